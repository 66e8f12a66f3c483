"""The rule behind the default respawn strategy, ``auto``: keep a second initialised process only where it fits.

``auto`` makes every worker after the first by forking a template that ran the user's init once, so that a fault,
and the next one, and the one after, each cost a fork. The template holds as much memory as a worker until it has
forked one (after that, its pages are shared copy-on-write), so at init, once the first worker is ready, its RSS
decides when the template starts: *ahead*, right after the first response, when the supervisor plus two such
processes take at most :data:`SPARE_MEMORY_SHARE` of the function's memory (room left for the handler to grow);
else only at the first fault.
"""

from __future__ import annotations

#: The share of the function's memory that the supervisor and two initialised processes may take.
SPARE_MEMORY_SHARE = 0.6
MiB = 1024 * 1024


def template_ahead(memory_size_mb: int, supervisor_rss_bytes: int, worker_rss_bytes: int) -> tuple[bool, str]:
    """(whether the fork template starts ahead of any fault, the reason in one line) for a function of
    ``memory_size_mb`` whose first worker, after init, holds ``worker_rss_bytes``."""
    need_mb = (supervisor_rss_bytes + 2 * worker_rss_bytes) / MiB
    budget_mb = SPARE_MEMORY_SHARE * memory_size_mb
    sums = (f"supervisor {supervisor_rss_bytes / MiB:.1f} MB + 2 x worker {worker_rss_bytes / MiB:.1f} MB = "
            f"{need_mb:.1f} MB")
    share = f"{SPARE_MEMORY_SHARE:.0%} of {memory_size_mb} MB"
    if need_mb <= budget_mb:
        return True, f"{sums} <= {share}: the template starts after the first response"
    return False, f"{sums} > {share}: no room for a second initialised process; the template starts at a fault"
