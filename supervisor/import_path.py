"""Keeping the user's code off the supervisor's import path.

The supervisor never imports user code, yet ``python -m lambda_supervisor.supervisor`` puts the working directory
first on ``sys.path``, and on Lambda that is the task root, where ``pip install --target`` puts the function's own
dependencies: a ``tenacity.py`` or ``loguru.py`` there would replace ours, and the supervisor would die before it
could report anything. Entry points we write run ``python -P``; this covers the ones users write, and a task root
on ``PYTHONPATH``. (The worker keeps its own imports apart: see worker/main.py.)
"""

from __future__ import annotations

import os
import sys


def _resolved(entry: str) -> str | None:
    """The entry as a real absolute path (os.path, not pathlib: this runs first, on the way to the first worker)."""
    try:
        return os.path.realpath(entry or os.curdir)
    except (OSError, ValueError):
        return None


def keep_user_code_off_the_path() -> None:
    """Drop the working directory and ``LAMBDA_TASK_ROOT`` from ``sys.path``, unless lambda-supervisor itself was
    installed there (a zip with everything in the task root): then its dependencies are there too."""
    user_dirs = {_resolved(os.curdir)}
    if os.environ.get("LAMBDA_TASK_ROOT"):
        user_dirs.add(_resolved(os.environ["LAMBDA_TASK_ROOT"]))
    ours = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))  # where lambda_supervisor is
    user_dirs.discard(ours)
    user_dirs.discard(None)
    sys.path[:] = [entry for entry in sys.path if _resolved(entry) not in user_dirs]
