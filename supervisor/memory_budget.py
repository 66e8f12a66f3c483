"""The memory of all workers together, held to one total when several slots share the function's memory.

Each worker has its own hard limit (a fair share of the total, doubled: see config.py), so one request may grow
while the others are small. What keeps the sum within the function's memory is this budget: whenever a busy worker
checks its memory (every memory poll), the budget measures every worker's tree (the slots' workers, the fork
template, a standby) at most once per poll for all of them. Over the total, it kills the **largest** worker that
has served, never a random one: a busy one is told on its own check and answers its request with
Runtime.OutOfMemory; an idle one holds no request and is killed at once (its slot replaces it when the next event
comes, ``died-while-idle``). As for one worker (memory.py), the cheap RSS sum decides first; PSS, which counts a
page shared copy-on-write with the template once, is read only when that sum is over, at most a tenth of the time,
unless the last PSS plus what the RSS sum grew since is over too: a kill is always decided on a real reading.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .events import emit
from .memory import PSS_BACKOFF, pss_bytes, rss_sum
from .process_tree import Children, children_by_parent, kill_tree, with_descendants

#: Measures each worker's tree: (pid -> RSS sum, a function giving pid -> PSS sum when that is needed).
Measure = Callable[[set[int]], tuple[dict[int, int], Callable[[], dict[int, int]]]]


def measure_trees(pids: set[int]) -> tuple[dict[int, int], Callable[[], dict[int, int]]]:
    """Every worker's tree from one scan of /proc: its RSS sum now, and its PSS sum on demand."""
    parents = children_by_parent()
    trees = {pid: with_descendants([pid], parents) for pid in pids}
    return ({pid: rss_sum(tree) for pid, tree in trees.items()},
            lambda: {pid: sum(pss_bytes(member) for member in tree) for pid, tree in trees.items()})


class MemoryBudget:
    """Shared by the workers of all slots; thread-safe."""

    def __init__(self, limit_bytes: int, children: Children, poll_s: float, *, measure: Measure = measure_trees,
                 kill: Callable[[int], None] = kill_tree) -> None:
        self.limit_bytes = limit_bytes
        self._children = children
        self._poll_s = poll_s
        self._measure = measure
        self._kill = kill
        self._lock = threading.Lock()
        self._busy: set[int] = set()
        self._served: set[int] = set()  # workers that have served: the template and a standby are never chosen
        self._condemned: dict[int, str] = {}  # busy workers to end on their next check, with the reason
        self._measured_at = 0.0
        self._pss_due = 0.0
        self._pss_total = 0  # all workers' PSS at the last reading, and their RSS sum then
        self._rss_at_pss = 0

    def serving(self, pid: int, busy: bool) -> None:
        """A worker starts (True) or ends (False) an invocation."""
        with self._lock:
            if busy:
                self._busy.add(pid)
                self._served.add(pid)
            else:
                self._busy.discard(pid)
                self._condemned.pop(pid, None)

    def check(self, pid: int) -> str | None:
        """On a busy worker's memory check: the reason it must die now (it is the largest, and all are over the
        total), else None."""
        with self._lock:
            now = time.monotonic()
            if now - self._measured_at >= self._poll_s:
                self._measured_at = now
                self._enforce()
            return self._condemned.pop(pid, None)

    def _enforce(self) -> None:
        workers = set(self._children.workers)
        self._served &= workers
        rss, pss_of = self._measure(workers)
        rss_total = sum(rss.values())
        if rss_total <= self.limit_bytes or not self._served:
            return
        estimate = self._pss_total + max(rss_total - self._rss_at_pss, 0)  # the last PSS, plus what RSS grew since
        if time.monotonic() < self._pss_due and estimate <= self.limit_bytes:  # at most a tenth of the time
            return
        started = time.monotonic()
        pss = pss_of()
        self._pss_due = time.monotonic() + PSS_BACKOFF * (time.monotonic() - started)
        total = self._pss_total = sum(pss.values())
        self._rss_at_pss = rss_total
        if total <= self.limit_bytes:
            return
        victim = max(self._served, key=lambda pid: pss.get(pid, 0))
        reason = (f"all workers together exceeded the memory limit: PSS {total / 2**20:.1f} MB > "
                  f"{self.limit_bytes / 2**20:.0f} MB, and this worker held the most ({pss.get(victim, 0) / 2**20:.1f}"
                  f" MB)")
        self._pss_due = 0.0  # after a kill, the next check measures afresh
        if victim in self._busy:
            self._condemned[victim] = reason
            return
        self._served.discard(victim)
        self._kill(victim)  # idle: no request to answer; its slot replaces it on its next event
        emit("worker_killed_for_memory", "killed the largest worker, idle, to keep all workers within the memory "
             "limit", level="WARNING", pid=victim, pss_mb=pss.get(victim, 0) / 2**20, total_mb=total / 2**20,
             limit_mb=self.limit_bytes / 2**20)
