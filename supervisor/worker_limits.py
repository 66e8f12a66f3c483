"""The limits a worker is held to, given to it when it is built (they do not change between invocations)."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    max_rss_bytes: int  # its tree's memory; over it, the worker is killed (out-of-memory)
    max_response_bytes: int  # a larger result is answered with Runtime.ResponseSizeTooLarge
    max_frame_payload_bytes: int  # a larger frame from the worker is never read (oversize-frame)
    timeout_margin_s: float  # the timeout fires this long before Lambda's deadline
    poll_s: float  # how often the memory limit and shutdown requests are checked during an invocation
    shutdown_grace_s: float  # how long a handler gets after SIGTERM before it is killed

    @classmethod
    def from_config(cls, config: Config) -> WorkerLimits:
        return cls(
            max_rss_bytes=config.max_rss_bytes,
            max_response_bytes=config.max_response_bytes,
            max_frame_payload_bytes=config.max_frame_payload_bytes,
            timeout_margin_s=config.timeout_margin_ms / 1000,
            poll_s=config.memory_poll_ms / 1000,
            shutdown_grace_s=config.shutdown_grace_ms / 1000,
        )
