"""The few ``prctl(2)`` calls both processes make about their place in the process tree and who may inspect them.

Linux only; elsewhere each call reports failure and changes nothing.
"""

from __future__ import annotations

from . import libc

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def _prctl(option: int, value: int) -> int:
    try:
        return libc.call("prctl", option, value, 0, 0, 0)
    except OSError:
        return -1


def set_child_subreaper(enabled: bool) -> bool:
    """Adopt (or stop adopting) the orphans of our descendants, instead of letting them go further up; returns
    whether it worked."""
    return _prctl(PR_SET_CHILD_SUBREAPER, int(enabled)) == 0


def is_child_subreaper() -> bool:
    flag = libc.CInt(0)
    try:
        return libc.call("prctl", PR_GET_CHILD_SUBREAPER, libc.byref(flag), 0, 0, 0) == 0 and bool(flag.value)
    except OSError:
        return False


def set_dumpable(enabled: bool) -> bool:
    """Non-dumpable: another process of the same user can neither ptrace us nor read our /proc environ or mem (and
    no core dump is written). ``execve`` makes a process dumpable again; ``fork`` does not."""
    return _prctl(PR_SET_DUMPABLE, int(enabled)) == 0


def is_dumpable() -> bool:
    return _prctl(PR_GET_DUMPABLE, 0) == 1
