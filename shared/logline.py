"""One log line, in Lambda's Text or JSON log format; used by the supervisor's lines and the handler's output.

Text (:func:`text_line`, the worker's tagged output): Lambda's ``[LEVEL]<TAB>timestamp<TAB>requestId<TAB>message``;
the supervisor's lines use their own column order (see supervisor/logs.py). We write to stdout, where every
``\\n`` would start a new CloudWatch log event, so newlines *inside* a message (a traceback) are written as
``\\r``: CloudWatch shows them as line breaks but keeps the message one event. JSON: one object per line with
``timestamp``, ``level``, ``message``, ``logger`` and ``requestId`` (left out outside an invocation), plus whatever
structured fields the caller adds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TEXT = "Text"
JSON = "JSON"


def timestamp(seconds: float | None = None) -> str:
    """UTC, millisecond precision, as Lambda writes it: ``2024-05-01T12:00:00.123Z``."""
    now = time.time() if seconds is None else seconds
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def one_line(message: str) -> str:
    """The message as one CloudWatch event: a trailing newline dropped, inner ones (and ``\\r\\n``) as ``\\r``."""
    if message.endswith("\n"):
        message = message[:-1]
    if "\n" in message:
        message = message.replace("\r\n", "\r").replace("\n", "\r")
    return message


def text_line(seconds: float, request_id: str | None, level: str, message: str) -> str:
    return f"[{level}]\t{timestamp(seconds)}\t{request_id or ''}\t{one_line(message)}\n"


def json_line(
    seconds: float,
    request_id: str | None,
    level: str,
    message: str,
    logger: str,
    extra: Mapping[str, Any] | None = None,
) -> str:
    record: dict[str, Any] = {"timestamp": timestamp(seconds), "level": level, "message": message, "logger": logger}
    if request_id:
        record["requestId"] = request_id
    if extra:
        record.update((key, value) for key, value in extra.items() if key not in record)
    return json.dumps(record, ensure_ascii=False, default=str) + "\n"
