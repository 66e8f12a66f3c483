"""Moving the CPU hand-off's home away from a CPU that something else keeps busy (see shared/cpu_handoff.py).

The hand-off pays because the supervisor and the waiting worker wake each other on one CPU. When another process
keeps that CPU busy (a busy loop, an extension), every wake-up there waits for it or preempts it, and the hand-off
loses to no hand-off at all (README, "Since 05:29"). So, at most every 0.2 s and only while invocations come, the
supervisor looks at how busy each CPU was (``/proc/stat``) and how much of that was its own and its worker's
(``/proc/PID/stat``): when others kept the home busy at least half the time and another CPU was at least a quarter
idle, that one becomes the home. The supervisor moves at once; the worker follows with the next event
(``InvokeMessage.home_cpu``). After a move it waits a while before it would move again. The workers kept in
reserve (a standby, the fork template) wait at idle priority where they were started; at every look once the home
has moved, the supervisor moves their main threads to it too: left beside whatever keeps the old home busy, an
idle-priority process barely runs, and a template would be slow to fork, or even to exit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable

from lambda_supervisor.shared.cpu_handoff import CpuHandoff

from .process_tree import cpu_ticks

#: How often the CPUs are looked at, at most. The kernel counts CPU time in ticks of 10 ms: ~20 per CPU per look,
#: enough to tell a CPU kept busy from one a quarter idle.
LOOK_S = 0.2
#: A gap between looks longer than this (no invocations came) starts the measurement over.
STALE_S = 3 * LOOK_S
#: After a move, how long before another may be made.
SETTLE_S = 5.0
#: Others' share of the home CPU from which it counts as taken, and the least idle share of a CPU to move to.
TAKEN = 0.5
IDLE_ENOUGH = 0.25

#: Per CPU, (ticks busy, ticks in all), from /proc/stat.
CpuTicks = dict[int, tuple[int, int]]


def parse_proc_stat(text: bytes) -> CpuTicks:
    """Each ``cpuN`` line of /proc/stat: busy ticks (all but idle and iowait) and all ticks."""
    ticks: CpuTicks = {}
    for line in text.split(b"\n"):
        if line.startswith(b"cpu") and line[3:4].isdigit():
            name, *fields = line.split()
            counts = [int(field) for field in fields[:8]]  # user nice system idle iowait irq softirq steal
            ticks[int(name[3:])] = (sum(counts) - counts[3] - counts[4], sum(counts))
    return ticks


def better_home(home: int, cpus: frozenset[int], before: CpuTicks, after: CpuTicks, own_ticks: int) -> int | None:
    """The CPU to move the home to, or None to stay. ``own_ticks``: what the supervisor and its worker used over
    the same time, all of it counted against the home (so that their own work never looks like someone else's)."""
    if home not in before or home not in after:
        return None
    busy, total = after[home][0] - before[home][0], after[home][1] - before[home][1]
    if total <= 0 or (busy - own_ticks) / total < TAKEN:
        return None
    idle_shares = []
    for cpu in cpus - {home}:
        if cpu in before and cpu in after and (spent := after[cpu][1] - before[cpu][1]) > 0:
            idle_shares.append((1 - (after[cpu][0] - before[cpu][0]) / spent, -cpu, cpu))
    if not idle_shares:
        return None
    idle, _, cpu = max(idle_shares)
    return cpu if idle >= IDLE_ENOUGH else None


class HomeCpu:
    """The hand-off's current home, for one slot; :meth:`look` after an invocation's post may move it."""

    def __init__(self, handoff: CpuHandoff) -> None:
        self.handoff = handoff
        self.home = handoff.home
        #: At the last look: when, the CPUs' ticks, our own ticks, and the worker they include.
        self._last: tuple[float, CpuTicks, int, int] | None = None
        self._still_until = 0.0

    @property
    def moved(self) -> bool:
        return self.home != self.handoff.home

    def look(self, now: float, worker_pid: int, reserve_pids: Callable[[], Iterable[int]]) -> tuple[int, int] | None:
        """Look, if a look is due: (from, to) when the home moved (the calling thread is now pinned there). Once
        the home has moved, each look also moves the reserves' main threads (``reserve_pids()``) to it."""
        if self._last is not None and now - self._last[0] < LOOK_S:
            return None
        moved = self._decide(now, worker_pid)
        if self.moved:
            for pid in reserve_pids():
                with contextlib.suppress(OSError):  # exited meanwhile: the loop replaces it
                    os.sched_setaffinity(pid, {self.home})
        return moved

    def _decide(self, now: float, worker_pid: int) -> tuple[int, int] | None:
        try:
            with open("/proc/stat", "rb") as stat:
                ticks = parse_proc_stat(stat.read())
        except (OSError, ValueError, IndexError):  # unreadable: look next time
            ticks = {}
        own, worker = cpu_ticks(os.getpid()), cpu_ticks(worker_pid)
        if not ticks or own is None or worker is None:  # or the worker is gone meanwhile
            self._last = None
            return None
        own += worker
        last, self._last = self._last, (now, ticks, own, worker_pid)
        if last is None or now - last[0] > STALE_S or last[3] != worker_pid or now < self._still_until:
            return None  # a new baseline: nothing came for a while, the worker was replaced, or a move is recent
        target = better_home(self.home, self.handoff.cpus, last[1], ticks, own - last[2])
        if target is None or target == self.home:
            return None
        try:
            os.sched_setaffinity(0, {target})
        except OSError:  # the sandbox's CPUs changed under us: stay
            return None
        moved, self.home, self._still_until = (self.home, target), target, now + SETTLE_S
        return moved
