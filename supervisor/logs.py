"""The supervisor's own log lines: loguru to stdout, which Lambda ships to CloudWatch.

``Text`` (the default) keeps the greppable ``timestamp<TAB>LEVEL<TAB>lambda-supervisor<TAB>message`` layout, with
newlines inside a message written as ``\\r`` so that a message stays one CloudWatch event. ``JSON`` writes one
object per line: ``timestamp``, ``level``, ``message``, ``logger``, ``requestId`` when the line is about a request,
and for lifecycle events (see :mod:`.events`) ``event`` and its structured ``fields``.

Every line goes through loguru except one: the REPORT line that ends each invocation (:func:`write_line`). It is
rendered by the same function and written to the same stream, but without loguru's per-call work (building a
record, its timestamp and caller frame), which cost more in ``bench/`` than the rest of the supervisor's
bookkeeping for an invocation. Lifecycle events are rare; the REPORT line is on every invocation.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any

from loguru import logger

from lambda_supervisor.shared.logline import JSON, json_line, one_line, timestamp

from .config import LOG_LEVELS

LOGGER_NAME = "lambda-supervisor"
#: The levels at or above the configured one, for the lines written without loguru.
_enabled_levels: frozenset[str] = frozenset()
_json_format = False


def render(seconds: float, level: str, message: str, event: str | None = None,
           fields: Mapping[str, Any] | None = None) -> str:
    """One log line, newline included, in the configured format."""
    if not _json_format:
        return f"{timestamp(seconds)}\t{level}\t{LOGGER_NAME}\t{one_line(message)}\n"
    rounded = {key: round(value, 3) if isinstance(value, float) else value for key, value in (fields or {}).items()}
    structured = {"event": event, "fields": rounded} if event is not None else None
    request_id = rounded.get("request_id")
    return json_line(seconds, request_id if isinstance(request_id, str) else None, level, message, LOGGER_NAME,
                     structured)


def write_line(level: str, message: str, event: str, fields: Mapping[str, Any], then: str = "") -> None:
    """Write one event line (and ``then``, more text for the same stream) with a single write, bypassing loguru:
    for the per-invocation line only. The configured level applies as it does to loguru's lines."""
    line = render(time.time(), level, message, event, fields) if level in _enabled_levels else ""
    if line or then:
        sys.stdout.write(line + then)
        sys.stdout.flush()


def _message(record: Any) -> str:
    message = str(record["message"])
    exception = record["exception"]
    if exception is not None and exception.type is not None:
        message += "\n" + "".join(traceback.format_exception(exception.type, exception.value, exception.traceback))
    return message


def _sink(message: Any) -> None:
    record = message.record
    extra = record["extra"]
    sys.stdout.write(render(record["time"].timestamp(), record["level"].name, _message(record), extra.get("event"),
                            extra.get("fields")))
    sys.stdout.flush()


def configure_logging(level: str = "INFO", log_format: str = "Text") -> None:
    """One sink, stdout, flushed after every line, so a line is out before the next thing can go wrong."""
    global _enabled_levels, _json_format
    _json_format = log_format.upper() == JSON
    threshold = logger.level(level).no
    _enabled_levels = frozenset(name for name in LOG_LEVELS if logger.level(name).no >= threshold)
    logger.remove()
    logger.add(_sink, level=level, format="{message}", colorize=False, backtrace=False, diagnose=False)
