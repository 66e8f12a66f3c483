"""A short scheduler slice for the supervisor's slot threads, which wait on every invocation's path (Linux's EEVDF
custom slices, ``sched_setattr(2)``'s ``sched_runtime``); each asks once its first post is in flight (slot.py).

Why: a thread that wakes (the event has come, the worker has answered) on a CPU where another thread is running
waits until the kernel preempts that one; with the default slice (0.7-3 ms) that may be after the other thread's
whole burst. A thread with a shorter slice has an earlier deadline, so its wake-up preempts at once. What a slot
thread does when woken is a few tens of microseconds, well within the shortest slice the kernel allows (0.1 ms).
Measured: README, "Since 03:13" (where giving the worker's main thread the slice too was measured and not kept: it
gained nothing more, and a handler would have run with it).

Kernels before 6.12 accept the call and ignore the slice, and report none (0): ``shorten`` reads the thread's
attributes first and leaves such a thread alone. SCHED_FLAG_RESET_ON_FORK keeps the slice from the threads and
processes the thread starts (workers among them), which get the kernel's default. A thread whose policy is not
SCHED_OTHER is left as it is. Linux only (x86_64 and aarch64); elsewhere ``shorten`` changes nothing.
"""

from __future__ import annotations

import os
import sys
from _ctypes import _SimpleCData, get_errno

from lambda_supervisor.shared import libc

#: The shortest slice the kernel accepts (its sysctl_sched_base_slice clamp), in nanoseconds.
SHORT_SLICE_NS = 100_000
#: The system call numbers of sched_setattr and sched_getattr here (None: not Linux on x86_64 or aarch64).
_SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}.get(os.uname().machine) if sys.platform == "linux" else None
#: SCHED_ATTR_SIZE_VER0: size, policy, flags, nice, priority, runtime, deadline, period.
_ATTR_BYTES = 48
_SCHED_OTHER = 0
_SCHED_FLAG_RESET_ON_FORK = 0x01


class _Long(_SimpleCData):  # type: ignore[type-arg]
    """``ctypes.c_long``: syscall(2) reads each argument as a long."""

    _type_ = "l"


class _Char(_SimpleCData):  # type: ignore[type-arg]
    _type_ = "c"


#: Room for a ``struct sched_attr`` the kernel fills in.
_AttrBuffer = _Char * _ATTR_BYTES


def _attr(policy: int, flags: int, nice: int, runtime_ns: int) -> bytes:
    order = sys.byteorder
    return b"".join((_ATTR_BYTES.to_bytes(4, order), policy.to_bytes(4, order), flags.to_bytes(8, order),
                     nice.to_bytes(4, order, signed=True), bytes(4), runtime_ns.to_bytes(8, order), bytes(16)))


def _syscall(number: int, *arguments: object) -> None:
    """Raises OSError with the call's errno when it fails."""
    longs = [_Long(argument) if isinstance(argument, int) else argument for argument in arguments]
    if libc.call("syscall", _Long(number), *longs) != 0:
        errno = get_errno()
        raise OSError(errno, os.strerror(errno))


def _read_attr(tid: int) -> tuple[int, int, int]:
    """Thread ``tid``'s policy, nice value and slice in nanoseconds, as sched_getattr(2) reports them (the slice is
    0 on kernels without custom slices). Raises OSError where they cannot be read."""
    if _SYSCALLS is None:
        raise OSError("sched_getattr is only called on Linux on x86_64 and aarch64")
    buffer = _AttrBuffer()
    _syscall(_SYSCALLS[1], tid, buffer, _ATTR_BYTES, 0)
    raw, order = bytes(buffer), sys.byteorder
    return (int.from_bytes(raw[4:8], order), int.from_bytes(raw[16:20], order, signed=True),
            int.from_bytes(raw[24:32], order))


def current_slice_ns(tid: int = 0) -> int:
    """The slice the kernel gives thread ``tid`` (0: the calling one): 0 on kernels without custom slices. Raises
    OSError where it cannot be read."""
    return _read_attr(tid)[2]


def shorten(tid: int = 0) -> bool:
    """Give thread ``tid`` (0: the calling one; a process's pid names its main thread) the short slice, keeping its
    nice value, and not to what it starts; whether the kernel now gives it that slice. False, and nothing changed,
    where the thread is not SCHED_OTHER, the kernel has no custom slices (it reports none), or it refuses."""
    if _SYSCALLS is None:
        return False
    try:
        policy, nice, slice_ns = _read_attr(tid)
        if policy != _SCHED_OTHER or slice_ns == 0:  # before 6.12 the slice would be ignored
            return False
        _syscall(_SYSCALLS[0], tid, _attr(_SCHED_OTHER, _SCHED_FLAG_RESET_ON_FORK, nice, SHORT_SLICE_NS), 0)
        return current_slice_ns(tid) == SHORT_SLICE_NS
    except OSError:  # gone, or refused
        return False
