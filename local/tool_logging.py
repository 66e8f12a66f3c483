"""The local tools' log: the supervisor's own line format for our lines and for loguru's (the emulator's), so that
``serve`` shows one kind of line whoever wrote it."""

from __future__ import annotations

import traceback
from typing import Any

from loguru import logger

from lambda_supervisor.supervisor.logs import configure_logging, render, write_out


def configure_tool_logging(level: str = "INFO", log_format: str = "Text") -> None:
    """Our lines as :func:`configure_logging` writes them, and loguru's through the same sink, at the same level."""
    configure_logging(level, log_format)
    logger.remove()
    logger.add(_sink, level=level, format="{message}", colorize=False, backtrace=False, diagnose=False)


def _message(record: Any) -> str:
    message = str(record["message"])
    exception = record["exception"]
    if exception is not None and exception.type is not None:
        message += "\n" + "".join(traceback.format_exception(exception.type, exception.value, exception.traceback))
    return message


def _sink(message: Any) -> None:
    record = message.record
    extra = record["extra"]
    write_out(render(record["time"].timestamp(), record["level"].name, _message(record), extra.get("event"),
                     extra.get("fields")))
