"""When the soft timeout applies: only when it leaves the handler some time before it fires.

``LAMBDA_SUPERVISOR_SOFT_TIMEOUT_MS`` asks the worker to raise SoftTimeoutError that long before the deadline. At or
above the function's timeout that moment has passed before the handler starts, and every invocation would fail at
once; such a setting is a mistake, so it is ignored, with one warning. The function timeout is known at init when
``AWS_LAMBDA_FUNCTION_TIMEOUT`` is set; otherwise each event's deadline tells it, and an event whose time left at
arrival is not longer than the soft timeout runs without one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from lambda_supervisor.shared.printable import log_safe

from .events import emit
from .runtime_api import Invocation


def _function_timeout_ms(environ: Mapping[str, str]) -> float | None:
    try:
        seconds = float(environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT") or "")
    except ValueError:
        return None
    return seconds * 1000 if seconds > 0 else None


class SoftTimeout:
    """The soft timeout to give each invocation (0: none)."""

    def __init__(self, soft_timeout_ms: int, environ: Mapping[str, str]) -> None:
        self.soft_timeout_ms = soft_timeout_ms
        self._warned = False
        timeout_ms = _function_timeout_ms(environ)
        if soft_timeout_ms and timeout_ms is not None and soft_timeout_ms >= timeout_ms:
            self._warn(f"{timeout_ms:.0f} ms, the function timeout")
            self.soft_timeout_ms = 0

    def for_invocation(self, invocation: Invocation) -> int:
        soft = self.soft_timeout_ms
        if soft and soft >= (time_left_ms := invocation.deadline_ms - time.time() * 1000):
            self._warn(f"{max(time_left_ms, 0):.0f} ms, the time left for request {log_safe(invocation.request_id)}")
            return 0
        return soft

    def _warn(self, limit: str) -> None:
        if not self._warned:
            self._warned = True
            emit("soft_timeout_ignored", f"LAMBDA_SUPERVISOR_SOFT_TIMEOUT_MS={self.soft_timeout_ms} is not shorter "
                 f"than {limit}: the soft timeout is ignored (it would fire before the handler starts)",
                 level="WARNING")
