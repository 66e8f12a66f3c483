"""How much memory a worker's process tree holds, counting each shared page once.

RSS summed over a tree counts a page shared by several processes (a forked child's copy-on-write memory, the
interpreter's libraries) once per process: a handler holding 150 MB that forks three idle children would look like
600 MB. PSS (proportional set size) splits each shared page between the processes that map it, so the PSS of a
tree sums to what the tree really holds. Reading it costs a page-table walk per process (``/proc/<pid>/smaps_rollup``,
about 4 ms for 600 MB), so it is read only when the cheap RSS sum is over the limit (PSS is never above RSS), and
then at most a tenth of the time; in between, the last PSS plus what the RSS sum grew since stands in for it.
"""

from __future__ import annotations

import os
import time

#: Wait this many times what the last PSS read took before the next one: PSS reads take at most ~1/10 of the time.
PSS_BACKOFF = 10
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int) -> int:
    """One process's RSS from its /proc statm (what psutil reads, without importing psutil); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


def pss_bytes(pid: int) -> int:
    """One process's PSS, or its RSS where the kernel has no smaps_rollup (before Linux 4.14); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss_bytes(pid)


def rss_sum(pids: list[int]) -> int:
    return sum(rss_bytes(pid) for pid in pids)


class TreeMemoryGauge:
    """The memory of one worker's tree, measured tick after tick (see the module's docstring)."""

    def __init__(self) -> None:
        self._pss = 0
        self._rss_at_pss = 0
        self._pss_due = 0.0

    def measure(self, pids: list[int], limit_bytes: int) -> tuple[int, int]:
        """(memory, RSS sum): the memory is the RSS sum while that is within ``limit_bytes``, else the PSS sum, read
        afresh whenever an estimate would be over the limit, so that a kill is always decided on a real reading."""
        rss = rss_sum(pids)
        if rss <= limit_bytes:
            return rss, rss
        estimate = self._pss + max(rss - self._rss_at_pss, 0)
        if self._pss and time.monotonic() < self._pss_due and estimate <= limit_bytes:
            return estimate, rss
        started = time.monotonic()
        self._pss = sum(pss_bytes(pid) for pid in pids)
        self._rss_at_pss = rss
        self._pss_due = time.monotonic() + PSS_BACKOFF * (time.monotonic() - started)
        return self._pss, rss
