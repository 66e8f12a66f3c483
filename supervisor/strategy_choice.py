"""The rule behind the default respawn strategy, ``auto``: keep a second initialised worker only where it fits.

``spare`` is the fastest recovery that shares nothing, but its standby holds as much memory as the active worker.
So at init, once the first worker is ready, its RSS decides: ``spare`` when the supervisor plus two such workers
take at most :data:`SPARE_MEMORY_SHARE` of the function's memory (room left for the handler to grow), else
``fork``, whose template is started at the first fault and whose workers share its pages copy-on-write.

With N slots (Lambda Managed Instances) every slot needs an initialised worker at once: N separate inits hold N
copies of what the init built, where N workers forked from one template share a single copy until they write to
it. So ``auto`` forks all N slots from one template, started first (:func:`choose_for_slots`); only if the user's
init cannot be a template's does each slot run its own (``fresh``). Memory is then held to a per-worker limit and a
total across slots (config.py, memory_budget.py).
"""

from __future__ import annotations

#: The share of the function's memory that the supervisor and two initialised workers may take for ``spare``.
SPARE_MEMORY_SHARE = 0.6
MiB = 1024 * 1024


def choose_strategy(memory_size_mb: int, supervisor_rss_bytes: int, worker_rss_bytes: int) -> tuple[str, str]:
    """(strategy, the reason in one line) for a function of ``memory_size_mb`` whose first worker, after init,
    holds ``worker_rss_bytes``."""
    need_mb = (supervisor_rss_bytes + 2 * worker_rss_bytes) / MiB
    budget_mb = SPARE_MEMORY_SHARE * memory_size_mb
    sums = (f"supervisor {supervisor_rss_bytes / MiB:.1f} MB + 2 x worker {worker_rss_bytes / MiB:.1f} MB = "
            f"{need_mb:.1f} MB")
    share = f"{SPARE_MEMORY_SHARE:.0%} of {memory_size_mb} MB"
    if need_mb <= budget_mb:
        return "spare", f"{sums} <= {share}"
    return "fork", f"{sums} > {share}: no room for a standby"


def choose_for_slots(slots: int) -> tuple[str, str]:
    """(strategy, the reason in one line) for ``auto`` with ``slots`` > 1, before any worker exists."""
    return "fork", (f"{slots} slots: forked from one template, they share its init's memory (separate inits would "
                    f"hold {slots} copies)")
