"""Killing a worker together with everything it started, and leaving neither orphans nor zombies behind.

A worker runs in its own session, so its process group normally holds all its descendants and one ``killpg``
ends them. A handler may still move a child out of that group (``setsid``, double fork); to catch those, the
supervisor makes itself a *child subreaper*: orphans of the worker's tree are re-parented to the supervisor instead
of to init, where it can see them, kill them and reap them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

import psutil
from loguru import logger

PR_SET_CHILD_SUBREAPER = 36

#: The workers this process started and has not reaped yet. Every other child of ours is an orphan the kernel
#: re-parented to us from a worker's tree (we are a subreaper): a handler's daemon, still the handler's doing.
_workers: set[int] = set()


#: SIGCHLDs seen so far, once the supervisor counts them (None until then). A child that was alive when the count
#: was N is still alive while it is N, so "has it exited?" can be answered without a system call.
_child_signals: int | None = None


def start_counting_child_signals() -> None:
    """Promise that every SIGCHLD from now on is counted (the caller installs a handler that calls
    :func:`count_child_signal`)."""
    global _child_signals
    if _child_signals is None:
        _child_signals = 0


def count_child_signal() -> None:
    """Called from the SIGCHLD handler: some child exited (or stopped) since the last count."""
    global _child_signals
    _child_signals = (_child_signals or 0) + 1


def child_signal_count() -> int | None:
    """The SIGCHLD count, or None if nothing counts them (every question then costs a system call)."""
    return _child_signals


def track_worker(pid: int, *, alive: bool) -> None:
    (_workers.add if alive else _workers.discard)(pid)


def adopted_orphans() -> list[psutil.Process]:
    """Our children that are not workers, and their descendants: what left a worker's tree but still runs."""
    try:
        strays = [child for child in psutil.Process().children() if child.pid not in _workers]
    except psutil.Error:
        return []
    found = list(strays)
    for stray in strays:
        with contextlib.suppress(psutil.Error):
            found.extend(stray.children(recursive=True))
    return found


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux only); returns whether it worked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def kill_tree(pid: int) -> None:
    """SIGKILL a worker (the leader of its own process group) and all its descendants, wherever they moved."""
    escaped = descendants(pid)
    signal_group(pid, signal.SIGKILL)
    for process in escaped:
        with contextlib.suppress(psutil.Error):
            process.kill()


def kill_orphans(keep: set[int], *, log: bool = True) -> list[int]:
    """Kill and reap every child of this process not in ``keep``: descendants of dead workers adopted by us.

    Returns their pids. ``log=False`` is for a signal handler, which must not enter the logger: the main thread
    may be inside it, holding its lock.
    """
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return []
    strays = [child for child in children if child.pid not in keep]
    for child in strays:
        with contextlib.suppress(psutil.Error):
            child.kill()
    for child in strays:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child.pid, 0)
    pids = [child.pid for child in strays]
    if strays and log:
        log_killed_orphans(pids)
    return pids


def log_killed_orphans(pids: list[int]) -> None:
    logger.info(f"killed orphaned worker descendants: pids={pids}")


def reap_exited_orphans(keep: set[int]) -> None:
    """Reap adopted orphans that have exited on their own, without touching (or reaping) the workers in ``keep``.

    One ``waitid`` call when there is nothing to do, so it is cheap enough to run after every invocation.
    """
    while True:
        try:
            status = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if status is None or status.si_pid in keep:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(status.si_pid, 0)
