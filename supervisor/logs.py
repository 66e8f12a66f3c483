"""The supervisor's own log lines, to stdout, which Lambda ships to CloudWatch.

``Text`` (the default) keeps the greppable ``timestamp<TAB>LEVEL<TAB>lambda-supervisor<TAB>message`` layout, with
newlines inside a message written as ``\\r`` so that a message stays one CloudWatch event. ``JSON`` writes one
object per line: ``timestamp``, ``level``, ``message``, ``logger``, ``requestId`` when the line is about a request,
and for lifecycle events (see :mod:`.events`) ``event`` and its structured ``fields``.

The supervisor writes its lines itself (:func:`write_line`, :func:`log`): loguru's per-call work cost more in
``bench/`` than the rest of an invocation's bookkeeping, and importing it (it imports asyncio) cost more than half
of the supervisor's cold start. Only the local tools (``serve``, ``demo``, ``invoke``, whose emulator logs through
loguru) import it, writing its records as these lines (local/tool_logging.py).

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
from collections.abc import Mapping

from lambda_supervisor.shared.logline import JSON, json_line, one_line, timestamp

from .config import LOG_LEVELS

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's
if TYPE_CHECKING:
    from typing import Any

LOGGER_NAME = "lambda-supervisor"
#: loguru's level numbers, so that a level is judged the same whoever writes the line.
LEVEL_NUMBERS = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "SUCCESS": 25, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
#: The levels at or above the configured one.
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


def enabled(level: str) -> bool:
    """Whether lines at ``level`` are written."""
    return level in _enabled_levels


def write_line(level: str, message: str, event: str | None, fields: Mapping[str, Any], then: str = "") -> None:
    """Write one event line (and ``then``, more text for the same stream) with a single write, if ``level`` is
    enabled (``then`` is written regardless)."""
    line = render(time.time(), level, message, event, fields) if enabled(level) else ""
    if line or then:
        write_out(line + then)


def log(level: str, message: str) -> None:
    """One plain line of the supervisor's (no lifecycle event), at the configured level."""
    write_line(level, message, None, {})


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


def configure_logging(level: str = "INFO", log_format: str = "Text") -> None:
    """Lines at ``level`` and above, to stdout, flushed after every line, so a line is out before the next thing
    can go wrong."""
    global _enabled_levels, _json_format
    _json_format = log_format.upper() == JSON
    _watch_stdout()
    threshold = LEVEL_NUMBERS[level]
    _enabled_levels = frozenset(name for name in LOG_LEVELS if LEVEL_NUMBERS[name] >= threshold)
