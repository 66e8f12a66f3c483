"""The worker process's first lines, started only by the supervisor (shared/worker_args.py's ``WORKER_COMMAND``).

A worker inherits the supervisor's pinning to its home CPU (see shared/cpu_handoff.py). Before anything else is
imported it reads its command line (shared/worker_args.py) and spreads over every CPU of the hand-off again, so
that its imports and the user's init do not queue behind the supervisor (and whatever else runs there) on that
one CPU. It is run with ``python -c``, not ``-m``: ``runpy`` (and what it imports) is not paid for at every start.
"""

from __future__ import annotations

import gc
import os
import sys

from lambda_supervisor.shared.worker_args import WorkerArgs, WorkerArgsError
from lambda_supervisor.worker.cpu_affinity import MainThreadCpu

#: What the user's code sees as ``sys.argv[0]``: this package's ``__main__.py``, as when the worker ran with ``-m``.
ARGV0 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__main__.py")


def start() -> None:
    """Read the command line (exit 2 if it is not one the supervisor writes), then run the worker; never returns."""
    gc.disable()  # no collection while our modules load (~1 ms of a cold start); on again before the user's code
    try:
        arguments = WorkerArgs.from_argv(sys.argv[1:])
    except WorkerArgsError as error:
        print(f"lambda_supervisor.worker: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    sys.argv[0] = ARGV0
    # The supervisor starts workers with posix_spawn, which cannot set their directory: the task root, as the
    # first worker's and Lambda's own runtime's (a forked worker is there already).
    task_root = os.environ.get("LAMBDA_TASK_ROOT")
    if task_root:
        os.chdir(task_root)
    cpu = MainThreadCpu(arguments.cpu_handoff)
    cpu.release()  # we inherited the supervisor's pinning: undo it before our imports and any user code

    from lambda_supervisor.worker.main import main

    raise SystemExit(main(arguments, cpu))
