"""How much memory a worker's process tree holds, counting each shared page once.

RSS summed over a tree counts a page shared by several processes (a forked child's copy-on-write memory, the
interpreter's libraries) once per process: a handler holding 150 MB that forks three idle children would look like
600 MB. PSS (proportional set size) splits each shared page between the processes that map it, so the PSS of a
tree sums to what the tree really holds. It costs a page-table walk per process (``/proc/<pid>/smaps_rollup``),
so it is read only when the cheap RSS sum is over the limit: PSS is never above RSS.
"""

from __future__ import annotations

import contextlib

import psutil


def pss_bytes(process: psutil.Process) -> int:
    """One process's PSS, or its RSS where the kernel has no smaps_rollup (before Linux 4.14); 0 once it is gone."""
    try:
        with open(f"/proc/{process.pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    with contextlib.suppress(psutil.Error):
        return int(process.memory_info().rss)
    return 0


def rss_sum(processes: list[psutil.Process]) -> int:
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += int(process.memory_info().rss)
    return total


def tree_memory_bytes(processes: list[psutil.Process], limit_bytes: int) -> tuple[int, int]:
    """(memory, RSS sum) of these processes: the memory is the PSS sum when the RSS sum is over ``limit_bytes``,
    and the RSS sum otherwise (the PSS sum is then under the limit too, and not worth its cost)."""
    rss = rss_sum(processes)
    if rss <= limit_bytes:
        return rss, rss
    return sum(pss_bytes(process) for process in processes), rss
