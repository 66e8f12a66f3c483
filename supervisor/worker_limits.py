"""The limits a worker is held to, given to it when it is built (they do not change between invocations)."""

from __future__ import annotations

from .config import Config
from .frozen import Frozen

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's

if TYPE_CHECKING:
    from .memory_budget import MemoryBudget


class WorkerLimits(Frozen):
    __slots__ = (
        "budget",
        "drain",
        "max_frame_payload_bytes",
        "max_response_bytes",
        "max_rss_bytes",
        "poll_s",
        "shutdown_grace_s",
        "timeout_margin_s",
    )
    max_rss_bytes: int  # its tree's memory; over it, the worker is killed (out-of-memory)
    max_response_bytes: int  # a larger result is answered with Runtime.ResponseSizeTooLarge
    max_frame_payload_bytes: int  # a larger frame from the worker is never read (oversize-frame)
    timeout_margin_s: float  # the timeout fires this long before Lambda's deadline
    poll_s: float  # how often the memory limit and shutdown requests are checked during an invocation
    shutdown_grace_s: float  # how long a handler gets after SIGTERM before it is killed
    budget: MemoryBudget | None  # with several slots: the total all workers may hold together
    #: At shutdown, an in-flight invocation runs on for the grace without a SIGTERM (several slots: Managed
    #: Instances stop an environment with requests in flight); else the handler is forwarded SIGTERM at once.
    drain: bool

    def __init__(self, max_rss_bytes: int, max_response_bytes: int, max_frame_payload_bytes: int,
                 timeout_margin_s: float, poll_s: float, shutdown_grace_s: float, budget: MemoryBudget | None = None,
                 drain: bool = False) -> None:
        self._set(max_rss_bytes=max_rss_bytes, max_response_bytes=max_response_bytes,
                  max_frame_payload_bytes=max_frame_payload_bytes, timeout_margin_s=timeout_margin_s, poll_s=poll_s,
                  shutdown_grace_s=shutdown_grace_s, budget=budget, drain=drain)

    @classmethod
    def from_config(cls, config: Config, budget: MemoryBudget | None = None) -> WorkerLimits:
        return cls(
            max_rss_bytes=config.max_rss_bytes,
            max_response_bytes=config.max_response_bytes,
            max_frame_payload_bytes=config.max_frame_payload_bytes,
            timeout_margin_s=config.timeout_margin_ms / 1000,
            poll_s=config.memory_poll_ms / 1000,
            shutdown_grace_s=config.shutdown_grace_ms / 1000,
            budget=budget,
            drain=config.concurrency > 1,
        )
