"""The rule behind the default respawn strategy, ``auto``: fork where forking is safe, keep a second initialised
process only where it fits.

``auto`` makes every worker after the first by forking a template that ran the user's init once, so that a fault,
and the next one, and the one after, each cost a fork. The template holds as much memory as a worker until it has
forked one (after that, its pages are shared copy-on-write), so at init, once the first worker is ready, its RSS
decides when the template starts: *ahead*, right after the first response, when the supervisor plus two such
processes take at most :data:`SPARE_MEMORY_SHARE` of the function's memory (room left for the handler to grow);
else only at the first fault.

A fork shares whatever the user's init opened and lacks the threads it started (the first worker reports both in
its ready frame, see worker/init_leftovers.py). Where a second initialised process fits and the init left either,
``auto`` keeps a ``spare`` standby instead, which shares nothing; where it does not fit, it still forks at the
first fault, and says what the forks share or lack.

With N slots (Lambda Managed Instances) every slot needs an initialised worker at once: N separate inits hold N
copies of what the init built, where N workers forked from one template share a single copy until they write to
it. So ``auto`` forks all N slots from one template, started first (:func:`choose_for_slots`); only if the user's
init cannot be a template's does each slot run its own (``fresh``). Memory is then held to a per-worker limit and a
total across slots (config.py, memory_budget.py).
"""

from __future__ import annotations

from lambda_supervisor.shared.protocol import InitLeftovers

from .frozen import Frozen

#: The share of the function's memory that the supervisor and two initialised processes may take.
SPARE_MEMORY_SHARE = 0.6
MiB = 1024 * 1024


class AutoChoice(Frozen):
    """What ``auto`` makes later workers with: ``fork`` (its template started ahead or at the first fault) or
    ``spare``, and why, in one line."""

    __slots__ = ("reason", "strategy", "template_ahead")
    strategy: str
    template_ahead: bool
    reason: str

    def __init__(self, strategy: str, template_ahead: bool, reason: str) -> None:
        self._set(strategy=strategy, template_ahead=template_ahead, reason=reason)


def _memory_rule(memory_size_mb: int, supervisor_rss_bytes: int, worker_rss_bytes: int) -> tuple[bool, str]:
    """(whether a second initialised process fits, the sum that says so)."""
    need_mb = (supervisor_rss_bytes + 2 * worker_rss_bytes) / MiB
    fits = need_mb <= SPARE_MEMORY_SHARE * memory_size_mb
    return fits, (f"supervisor {supervisor_rss_bytes / MiB:.1f} MB + 2 x worker {worker_rss_bytes / MiB:.1f} MB = "
                  f"{need_mb:.1f} MB {'<=' if fits else '>'} {SPARE_MEMORY_SHARE:.0%} of {memory_size_mb} MB")


def template_ahead(memory_size_mb: int, supervisor_rss_bytes: int, worker_rss_bytes: int) -> tuple[bool, str]:
    """(whether the fork template starts ahead of any fault, the reason in one line) for a function of
    ``memory_size_mb`` whose first worker, after init, holds ``worker_rss_bytes``."""
    fits, rule = _memory_rule(memory_size_mb, supervisor_rss_bytes, worker_rss_bytes)
    if fits:
        return True, f"{rule}: the template starts after the first response"
    return False, f"{rule}: no room for a second initialised process; the template starts at a fault"


def auto_choice(memory_size_mb: int, supervisor_rss_bytes: int, worker_rss_bytes: int,
                leftovers: InitLeftovers) -> AutoChoice:
    """``auto``'s strategy for a function whose first worker, after init, holds ``worker_rss_bytes`` and reported
    ``leftovers``."""
    ahead, reason = template_ahead(memory_size_mb, supervisor_rss_bytes, worker_rss_bytes)
    if leftovers.fork_safe:
        return AutoChoice("fork", ahead, reason)
    if ahead:
        rule = _memory_rule(memory_size_mb, supervisor_rss_bytes, worker_rss_bytes)[1]
        return AutoChoice("spare", False, f"{rule}, and {describe(leftovers)}: a standby is kept instead of forks")
    return AutoChoice("fork", False, f"{reason}; {describe(leftovers)}")


def describe(leftovers: InitLeftovers) -> str:
    """What the user's init left that a fork shares or lacks, e.g. ``init left 1 socket open (forks share it)``."""
    parts = []
    if leftovers.open_sockets:
        parts.append(f"{_count(leftovers.open_sockets, 'socket')} open (forks share {_it(leftovers.open_sockets)})")
    if leftovers.extra_threads:
        parts.append(f"{_count(leftovers.extra_threads, 'thread')} besides the main one (forks lack "
                     f"{_it(leftovers.extra_threads)})")
    return "init left " + " and ".join(parts)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _it(number: int) -> str:
    return "it" if number == 1 else "them"


def choose_for_slots(slots: int) -> tuple[str, str]:
    """(strategy, the reason in one line) for ``auto`` with ``slots`` > 1, before any worker exists."""
    return "fork", (f"{slots} slots: forked from one template, they share its init's memory (separate inits would "
                    f"hold {slots} copies)")
