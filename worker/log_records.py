"""How ``logging`` records are written, as awslambdaric writes them: its Text layout and its JSON record.

Text: ``[LEVEL]\\t<UTC time, milliseconds>Z\\t<request id>\\t<message>``, a plain ``logging.Formatter`` (a logged
exception's traceback follows the message). JSON: one object with ``timestamp`` (to the second), ``level`` (the
record's level rounded down to a standard one), ``message`` (a dict logged without arguments stays a dict),
``logger``, for a logged exception ``stackTrace``, ``errorType``, ``errorMessage`` and ``location``, then
``requestId``, ``tenantId`` (when there is one) and the record's own ``extra`` fields; fields that are None are left
out. Both formatters read ``aws_request_id`` and ``tenant_id`` from the record, which :class:`RequestIdFilter` puts
there, so a user's own format string may use ``%(aws_request_id)s`` as on Lambda.
"""

from __future__ import annotations

import json
import logging
import time
import traceback

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    from .output import HandlerOutput

    class Invocation(Protocol):
        """What the filter reads: the invocation in progress, if any."""

        request_id: str | None
        tenant_id: str | None

TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
TEXT_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
JSON_DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: Record attributes that are not ``extra`` fields (those of Python 3.11's LogRecord, and the two we add).
_NOT_EXTRA = frozenset({
    "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module", "exc_info", "exc_text",
    "stack_info", "lineno", "funcName", "created", "msecs", "relativeCreated", "thread", "threadName",
    "processName", "process", "aws_request_id", "tenant_id",
})
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
#: Lambda's application log levels, as ``logging`` levels (as awslambdaric maps them: TRACE is DEBUG).
LEVELS = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
          "WARNING": logging.WARNING, "ERROR": logging.ERROR, "FATAL": logging.CRITICAL,
          "CRITICAL": logging.CRITICAL}


class RequestIdFilter(logging.Filter):
    """Tags every record the handler's log handler sees with the invocation in progress ("" outside one)."""

    def __init__(self, invocation: Invocation) -> None:
        super().__init__()
        self._invocation = invocation

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self._invocation.request_id or ""
        record.tenant_id = self._invocation.tenant_id
        return True


def text_formatter() -> logging.Formatter:
    formatter = logging.Formatter(TEXT_FORMAT, TEXT_DATE_FORMAT)
    formatter.converter = time.gmtime
    return formatter


class JsonRecordFormatter(logging.Formatter):
    """A record as one JSON object, newline included, with awslambdaric's fields in awslambdaric's order."""

    def __init__(self) -> None:
        super().__init__(datefmt=JSON_DATE_FORMAT)
        self.converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        exc_info = record.exc_info if record.exc_info and record.exc_info[0] is not None else None
        message = record.msg if isinstance(record.msg, dict) and not record.args else record.getMessage()
        fields: dict[str, Any] = {
            "timestamp": self.formatTime(record, self.datefmt),
            "level": logging.getLevelName(min(50, max(0, record.levelno)) // 10 * 10),
            "message": message,
            "logger": record.name,
        }
        if exc_info is not None:
            fields.update(stackTrace=traceback.format_tb(exc_info[2]), errorType=exc_info[0].__name__,
                          errorMessage=str(exc_info[1]))
        fields["requestId"] = getattr(record, "aws_request_id", None)
        if exc_info is not None:
            fields["location"] = f"{record.pathname}:{record.funcName}:{record.lineno}"
        tenant_id = getattr(record, "tenant_id", None)
        if tenant_id is not None:
            fields["tenantId"] = tenant_id
        fields.update((key, value) for key, value in vars(record).items()
                      if key not in _NOT_EXTRA and key not in fields)
        return _encode({key: value for key, value in fields.items() if value is not None}) + "\n"


class LambdaLogHandler(logging.Handler):
    """The root logger's handler, as awslambdaric's: each record formatted in Lambda's layout (a formatter the user
    sets instead is honoured) and written as one event; records carry ``aws_request_id`` and ``tenant_id``."""

    def __init__(self, output: HandlerOutput) -> None:
        super().__init__()
        self._output = output
        self.setFormatter(JsonRecordFormatter() if output.json else text_formatter())
        self.addFilter(RequestIdFilter(output))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._output.record(self.format(record))
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def set_up_logging(output: HandlerOutput, log_level: str) -> None:
    """The root logger as awslambdaric leaves it before the user's code runs: only our handler, UTC times, and
    the level ``AWS_LAMBDA_LOG_LEVEL`` names (INFO by default with the JSON format)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    logging.Formatter.converter = time.gmtime  # as awslambdaric: the user's formatters write UTC times too
    root.addHandler(LambdaLogHandler(output))
    level = LEVELS.get(log_level.upper()) if log_level else (logging.INFO if output.json else None)
    if level is not None:
        root.setLevel(level)
