"""The log line for an invocation's error, as awslambdaric writes it before posting the error.

Text: ``[ERROR] Type: message``, ``Traceback (most recent call last):`` and the stack's lines, the leading spaces of
each stack line as no-break spaces (U+00A0), joined by ``\\r`` so that CloudWatch keeps the whole as one event; a
newline inside the message is written as ``\\r`` too (awslambdaric's telemetry descriptor keeps it one event on
Lambda; on stdout it would split). JSON: one object, ``timestamp`` (to the second), ``level``, ``errorMessage``,
``errorType``, ``requestId``, ``stackTrace``, encoded as results are.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from lambda_supervisor.shared.logline import one_line

from .serialisers import to_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NO_BREAK_SPACE = "\u00a0"


def _indent_as_no_break_spaces(line: str) -> str:
    stripped = line.lstrip(" ")
    return NO_BREAK_SPACE * (len(line) - len(stripped)) + stripped


def text_error_line(error: Mapping[str, Any]) -> str:
    error_type, message = error.get("errorType") or "", error.get("errorMessage") or ""
    headline = "[ERROR]" + (f" {error_type}" if error_type else "")
    if message:
        headline += (":" if error_type else "") + f" {message}"
    lines = [headline, "Traceback (most recent call last):"]
    for element in error.get("stackTrace") or []:
        lines.extend([_indent_as_no_break_spaces(line) for line in element.splitlines()] or [""])
    return one_line("\r".join(lines)) + "\n"


def json_error_line(error: Mapping[str, Any], request_id: str, seconds: float | None = None) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if seconds is None else seconds))
    record = {
        "timestamp": stamp,
        "level": "ERROR",
        "errorMessage": error.get("errorMessage") or "",
        "errorType": error.get("errorType") or "",
        "requestId": request_id,
        "stackTrace": error.get("stackTrace") or [],
    }
    return to_json(record) + "\n"


def error_log_line(error: Mapping[str, Any], request_id: str, *, json_format: bool) -> str:
    return json_error_line(error, request_id) if json_format else text_error_line(error)
