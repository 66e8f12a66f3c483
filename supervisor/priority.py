"""Idle CPU priority for the ``spare`` standby, so that its init (the user's, run again) never competes with the
invocations of the active worker: under ``SCHED_IDLE`` it only runs when nothing else wants the CPU.

A process may lower its priority freely, but leaving ``SCHED_IDLE`` (or undoing a nice value) needs
``CAP_SYS_NICE`` or an ``RLIMIT_NICE`` of 20 or more. A standby that is promoted must run at normal priority, so
it is only lowered where that can be undone; elsewhere (an unprivileged sandbox, as on Lambda) it keeps normal
priority, and only its start after the first response keeps it out of the way.
"""

from __future__ import annotations

import os

#: RLIMIT_NICE that lets a process go back to nice 0 (the limit is 20 - nice).
_RLIMIT_NICE_FOR_NICE_0 = 20


def can_restore() -> bool:
    """Whether a process we lower can be raised back to normal priority (root, or a generous RLIMIT_NICE)."""
    if os.geteuid() == 0:
        return True
    soft = _nice_limit()
    return soft is None or soft >= _RLIMIT_NICE_FOR_NICE_0


def _nice_limit() -> int | None:
    """The soft RLIMIT_NICE (None: unlimited), from /proc/self/limits: ``resource`` would be one more module held
    by the supervisor for this one read. 0 (no raising at all) if it cannot be read."""
    try:
        with open("/proc/self/limits", "rb") as limits:
            for line in limits:
                if line.startswith(b"Max nice priority"):
                    soft = line.split()[3]
                    return None if soft == b"unlimited" else int(soft)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def lower_to_idle(pid: int) -> str | None:
    """Run ``pid`` at idle priority: ``SCHED_IDLE``, else nice 19. Returns which ("idle", "nice-19"), or None if
    it stays at normal priority (it could not be raised back, or the kernel refused)."""
    if not can_restore():
        return None
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        return "idle"
    except (OSError, AttributeError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, pid, 19)
        return "nice-19"
    except OSError:
        return None


def _threads_of_tree(pid: int) -> list[int]:
    """Every thread of ``pid`` and of its descendants, from their /proc task lists (no scan of all of /proc: this
    is on the way from a crash to the next request)."""
    threads, pending = [], [pid]
    while pending:
        process = pending.pop()
        try:
            tids = os.listdir(f"/proc/{process}/task")
        except OSError:
            continue  # gone meanwhile
        for tid in tids:
            threads.append(int(tid))
            try:
                with open(f"/proc/{process}/task/{tid}/children", "rb") as children:
                    pending.extend(int(child) for child in children.read().split())
            except OSError:
                pass
    return threads


def restore_normal(pid: int) -> bool:
    """Every thread of ``pid`` and its descendants back to ``SCHED_OTHER`` at nice 0 (policy and nice value are
    per thread, and what the user's init started inherited the idle ones); whether all went."""
    restored = True
    for tid in _threads_of_tree(pid):
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, 0)
        except ProcessLookupError:
            pass
        except OSError:
            restored = False
    return restored
