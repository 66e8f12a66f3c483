"""``python -m lambda_supervisor.worker``: the worker process, started only by the supervisor.

A worker inherits the supervisor's pinning to its home CPU (see shared/cpu_handoff.py). Before anything else is
imported it reads its command line (shared/worker_args.py) and spreads over every CPU of the hand-off again, so
that its imports and the user's init do not queue behind the supervisor (and whatever else runs there) on that
one CPU.
"""

import contextlib
import os
import sys

from lambda_supervisor.shared.worker_args import WorkerArgs, WorkerArgsError

try:
    arguments = WorkerArgs.from_argv(sys.argv[1:])
except WorkerArgsError as error:
    print(f"lambda_supervisor.worker: {error}", file=sys.stderr)
    raise SystemExit(2) from None
if arguments.cpu_handoff is not None:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, arguments.cpu_handoff.cpus)

from lambda_supervisor.worker.main import main

raise SystemExit(main(arguments))
