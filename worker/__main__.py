"""``python -m lambda_supervisor.worker``: the worker process, started only by the supervisor.

A worker inherits the supervisor's pinning to its home CPU (see shared/cpu_handoff.py). Before anything is
imported it spreads over every CPU of the hand-off again, so that its imports and the user's init do not queue
behind the supervisor (and whatever else runs there) on that one CPU.
"""

import contextlib
import os
import sys


def _unpin_from_home_cpu(argv: list[str]) -> None:
    """``--cpu-handoff HOME:CPUS``: run on CPUS now (main.py checks the argument properly later)."""
    if "--cpu-handoff" not in argv[:-1]:
        return
    cpus = argv[argv.index("--cpu-handoff") + 1].partition(":")[2]
    with contextlib.suppress(OSError, ValueError):
        os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(",")})


_unpin_from_home_cpu(sys.argv)

from lambda_supervisor.worker.main import main  # noqa: E402

raise SystemExit(main())
