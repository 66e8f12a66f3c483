"""The supervisor's own log lines: loguru to stdout, which Lambda ships to CloudWatch.

``Text`` (the default) keeps the greppable ``timestamp<TAB>LEVEL<TAB>lambda-supervisor<TAB>message`` layout, with
newlines inside a message written as ``\\r`` so that a message stays one CloudWatch event. ``JSON`` writes one
object per line: ``timestamp``, ``level``, ``message``, ``logger``, ``requestId`` when the line is about a request,
and for lifecycle events (see :mod:`.events`) ``event`` and its structured ``fields``.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

from loguru import logger

from lambda_supervisor.shared.logline import JSON, json_line, one_line, timestamp

LOGGER_NAME = "lambda-supervisor"


def _text(record: Any) -> str:
    when = timestamp(record["time"].timestamp())
    return f"{when}\t{record['level'].name}\t{LOGGER_NAME}\t{one_line(_message(record))}\n"


def _json(record: Any) -> str:
    extra = record["extra"]
    fields = {key: round(value, 3) if isinstance(value, float) else value
              for key, value in (extra.get("fields") or {}).items()}
    structured = {"event": extra["event"], "fields": fields} if "event" in extra else None
    request_id = fields.get("request_id")
    return json_line(record["time"].timestamp(), request_id if isinstance(request_id, str) else None,
                     record["level"].name, _message(record), LOGGER_NAME, structured)


def _message(record: Any) -> str:
    message = str(record["message"])
    exception = record["exception"]
    if exception is not None and exception.type is not None:
        message += "\n" + "".join(traceback.format_exception(exception.type, exception.value, exception.traceback))
    return message


def configure_logging(level: str = "INFO", log_format: str = "Text") -> None:
    """One sink, stdout, flushed after every line, so a line is out before the next thing can go wrong."""
    render = _json if log_format.upper() == JSON else _text

    def sink(message: Any) -> None:
        sys.stdout.write(render(message.record))
        sys.stdout.flush()

    logger.remove()
    logger.add(sink, level=level, format="{message}", colorize=False, backtrace=False, diagnose=False)
