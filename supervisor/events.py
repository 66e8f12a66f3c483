"""Supervisor lifecycle events: one call per thing that happened, rendered as one log line.

The main loop says *what* happened (``emit("worker_replaced", "worker replaced", reason=..., ...)``); this module
decides how it is shown. Every event keeps its fields structured (``event`` and ``fields``, see :mod:`.logs`), so
the JSON log format can show them as data, and each event is offered to the metrics recorder
(:mod:`.metrics`), which turns the ones it knows into CloudWatch Embedded Metric Format lines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from lambda_supervisor.shared.printable import log_safe

from .logs import enabled, write_line

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's
if TYPE_CHECKING:
    from typing import Any

#: Called with every event and its fields; returns the metric lines to write for it ("" for none). Set by
#: :func:`.metrics.configure_metrics`; None: no metrics.
observer: Callable[[str, Mapping[str, Any]], str] | None = None


def _render(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    text = str(value)  # may come from user code (an error type, a message): it must not end the line
    return repr(text) if (" " in text or not text) else log_safe(text)


def emit(event: str, message: str, /, *, level: str = "INFO", **fields: Any) -> None:
    """Log one lifecycle event: ``message: key=value ...`` in text, with ``event`` and ``fields`` bound."""
    text = ""  # a line below the configured level is not written: its fields need no rendering (metrics may)
    if enabled(level):
        text = message + (": " + " ".join(f"{key}={_render(value)}" for key, value in fields.items()) if fields else "")
    emit_line(event, text, level=level, **fields)


def emit_line(event: str, line: str, /, *, level: str = "INFO", **fields: Any) -> None:
    """Log one lifecycle event whose text the caller has already written, with its metrics in the same write."""
    write_line(level, line, event, fields, then=observer(event, fields) if observer is not None else "")
