"""The supervisor's own log lines: loguru to stdout, which Lambda ships to CloudWatch.

``Text`` (the default) keeps the greppable ``timestamp<TAB>LEVEL<TAB>lambda-supervisor<TAB>message`` layout, with
newlines inside a message written as ``\\r`` so that a message stays one CloudWatch event. ``JSON`` writes one
object per line: ``timestamp``, ``level``, ``message``, ``logger``, ``requestId`` when the line is about a request,
and for lifecycle events (see :mod:`.events`) ``event`` and its structured ``fields``.

Every line goes through loguru except one: the REPORT line that ends each invocation (:func:`write_line`). It is
rendered by the same function and written to the same stream, but without loguru's per-call work (building a
record, its timestamp and caller frame), which cost more in ``bench/`` than the rest of the supervisor's
bookkeeping for an invocation. Lifecycle events are rare; the REPORT line is on every invocation.

The worker's children share our stdout, and one may have left a partial line (``"downloading 10%\r"``) just
before our line; glued onto it, a REPORT line in JSON would no longer be JSON. So every write starts on a line
of its own (:func:`write_out`): on a regular file we look at its last byte and add a newline only when it is not
one; on a pipe (Lambda's, Docker's) we cannot look, so every write starts with a newline, and an empty line is
the price; on a terminal nothing is parsed and nothing is added.
"""

from __future__ import annotations

import os
import stat
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
#: How stdout is checked before a write: "file" (its last byte is read), "stream" (a newline always goes first),
#: or "terminal" (nothing is done).
_stdout_kind = "terminal"
#: For a "file" stdout: the same file opened for reading (stdout itself is usually opened write-only).
_peek_fd = -1


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
        write_out(line + then)


def write_out(text: str) -> None:
    """Write whole lines of ours to stdout, starting on a line of their own whatever a child wrote before."""
    sys.stdout.write(_line_break_needed() + text)
    sys.stdout.flush()


def _line_break_needed() -> str:
    if _stdout_kind == "terminal":
        return ""
    if _stdout_kind == "stream":
        return "\n"
    try:
        size = os.fstat(_peek_fd).st_size
        return "" if size == 0 or os.pread(_peek_fd, 1, size - 1) == b"\n" else "\n"
    except OSError:
        return "\n"


def _watch_stdout() -> None:
    """Decide how stdout is checked before each write (see the module's docstring)."""
    global _stdout_kind, _peek_fd
    if _peek_fd >= 0:
        os.close(_peek_fd)
        _peek_fd = -1
    try:
        fd = sys.stdout.fileno()
        if os.isatty(fd):
            _stdout_kind = "terminal"
        elif stat.S_ISREG(os.fstat(fd).st_mode):
            _peek_fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
            _stdout_kind = "file"
        else:
            _stdout_kind = "stream"
    except OSError:  # a file we cannot read back: treat it as a pipe
        _stdout_kind = "stream"
    except ValueError:  # no descriptor (a test's capture): nothing shares it
        _stdout_kind = "terminal"


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


def configure_logging(level: str = "INFO", log_format: str = "Text") -> None:
    """One sink, stdout, flushed after every line, so a line is out before the next thing can go wrong."""
    global _enabled_levels, _json_format
    _json_format = log_format.upper() == JSON
    _watch_stdout()
    threshold = logger.level(level).no
    _enabled_levels = frozenset(name for name in LOG_LEVELS if logger.level(name).no >= threshold)
    logger.remove()
    logger.add(_sink, level=level, format="{message}", colorize=False, backtrace=False, diagnose=False)
