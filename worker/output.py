"""The handler's output: ``print``, ``sys.stdout/stderr`` and ``logging``, as awslambdaric writes them.

``print`` and everything else written to ``sys.stdout``/``sys.stderr`` reaches the log raw, as on Lambda (log
shippers, CloudWatch filters and Embedded Metric Format lines depend on it). ``logging`` records use Lambda's Text or
JSON layout (see :mod:`.log_records`); each record is one CloudWatch event, newlines inside it written as ``\\r``.
With ``LAMBDA_SUPERVISOR_TAG_OUTPUT`` on, each write to stdout/stderr becomes a log event tagged with the request id
instead, except a line that is a JSON object (an EMF metric, a structured logger's record), which stays untouched.

Everything is written straight to the file descriptor with one ``os.write`` per write: nothing is buffered in this
process, so whatever the handler wrote is out before it can crash (``print`` is made one write). Output that bypasses
Python (C code, child processes) goes to the same descriptors; C's own ``stdout`` is made unbuffered.
"""

from __future__ import annotations

import builtins
import errno
import faulthandler
import io
import json
import os
import sys
import time

from lambda_supervisor.shared import libc
from lambda_supervisor.shared.protocol import STACK_DUMP_SIGNAL

from .on_import import when_imported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any

class HandlerOutput:
    """Where and how the handler's output is written; ``request_id`` and ``tenant_id`` are the invocation in
    progress. ``tag_output``: stdout/stderr writes become tagged log events instead of raw text."""

    def __init__(self, log_format: str, fd: int = 1, *, tag_output: bool = False) -> None:
        self.json = log_format.upper() == "JSON"  # shared/logline.py's JSON (imported on the first record)
        self.fd = fd
        self.tag_output = tag_output
        self.request_id: str | None = None
        self.tenant_id: str | None = None

    def raw(self, data: bytes) -> None:
        _write_all(self.fd, data)

    def record(self, formatted: str) -> None:
        """One formatted ``logging`` record, as one CloudWatch event."""
        from lambda_supervisor.shared.logline import one_line

        self.raw((one_line(formatted) + "\n").encode("utf-8", "backslashreplace"))

    def event(self, level: str, message: str, logger: str) -> None:
        """A tagged event (``tag_output``): Lambda's Text layout, or a JSON record from ``logger``."""
        from lambda_supervisor.shared.logline import json_line, text_line

        seconds = time.time()
        if self.json:
            line = json_line(seconds, self.request_id, level, message, logger)
        else:
            line = text_line(seconds, self.request_id, level, message)
        self.raw(line.encode("utf-8", "backslashreplace"))

    def log_error(self, error: dict[str, Any]) -> None:
        """Log an error about to be reported (an invocation's or init's), untagged, as awslambdaric logs it
        (see error_log)."""
        from .error_log import error_log_line  # on the first error

        line = error_log_line(error, self.request_id or "", json_format=self.json)
        _write_all(self.fd, line.encode("utf-8", "backslashreplace"))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:  # someone made the descriptor non-blocking: wait until it drains
            import select

            select.select([], [fd], [])
            continue
        except InterruptedError:
            continue
        except OSError as error:  # nobody is reading our output any more: nothing useful left to do with it
            if error.errno in (errno.EPIPE, errno.EBADF, errno.EIO):
                return
            raise
        view = view[written:]


class LogStream(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` for the handler: each ``write`` is one log event at ``level``."""

    def __init__(self, output: HandlerOutput, level: str, name: str, fd: int) -> None:
        super().__init__()
        self._output = output
        self._level = level
        self._name = name
        self._fd = fd
        self._line_open = False  # the last write ended without a newline
        self.buffer = _BinaryStream(self)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "backslashreplace"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not self._output.tag_output:
            self._output.raw(text.encode("utf-8", "backslashreplace"))
            return len(text)
        size = len(text)
        if self._line_open and text.startswith("\n"):  # the end of a line we already wrote out
            text = text[1:]
            self._line_open = False
        if text:
            self._line_open = not text.endswith("\n")
            message = text[:-1] if not self._line_open else text
            if not self._line_open and is_json_object_line(message):  # EMF, a structured logger: as it is
                self._output.raw(text.encode("utf-8", "backslashreplace"))
            else:
                self._output.event(self._level, message, self._name)
        return size

    def write_bytes(self, data: bytes) -> None:
        if self._output.tag_output:
            self.write(data.decode("utf-8", "backslashreplace"))
        else:
            self._output.raw(data)


def is_json_object_line(line: str) -> bool:
    """Whether ``line`` is one JSON object (which a log pipeline reads as such: it must not be wrapped)."""
    if not (line.startswith("{") and line.endswith("}")) or "\n" in line:
        return False
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


class _BinaryStream(io.RawIOBase):
    """``sys.stdout.buffer``: bytes written as they are (or, tagging, decoded and written as one event)."""

    def __init__(self, stream: LogStream) -> None:
        super().__init__()
        self._stream = stream

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._stream.fileno()

    def write(self, data: Any) -> int:
        raw = bytes(data)
        self._stream.write_bytes(raw)
        return len(raw)


def _print(*values: object, sep: str | None = " ", end: str | None = "\n", file: Any = None,
           flush: bool = False) -> None:
    """``print`` as one ``write``, so that one print is one log event."""
    stream = sys.stdout if file is None else file
    if isinstance(stream, LogStream):
        stream.write((" " if sep is None else sep).join(map(str, values)) + ("\n" if end is None else end))
    else:
        _builtin_print(*values, sep=sep, end=end, file=file, flush=flush)


_builtin_print = builtins.print
_MISSING: Any = object()
#: traceback's own print_exception, kept when :func:`_print_exception` replaces it (when traceback is imported).
_replaced: dict[str, Any] = {}


def _print_exception(exc: Any, /, value: Any = _MISSING, tb: Any = _MISSING, limit: int | None = None,
                     file: Any = None, chain: bool = True) -> None:
    """``traceback.print_exception`` (and ``print_exc``) as one ``write`` (one log event when tagging)."""
    import traceback  # imported already: this is its print_exception

    given = (exc,) if value is _MISSING and tb is _MISSING else (exc, value, tb)
    stream = sys.stderr if file is None else file
    if isinstance(stream, LogStream):
        stream.write("".join(traceback.format_exception(*given, limit=limit, chain=chain)))
    else:
        _replaced.get("print_exception", traceback.print_exception)(*given, limit=limit, file=file, chain=chain)


def _one_write_tracebacks(traceback: ModuleType) -> None:
    _replaced.setdefault("print_exception", traceback.print_exception)
    setattr(traceback, "print_exception", _print_exception)  # noqa: B010 - a module object of any kind


def _logging_set_up(output: HandlerOutput, log_level: str) -> Callable[[ModuleType], None]:
    def set_up(logging: ModuleType) -> None:
        from .log_records import set_up_logging

        set_up_logging(output, log_level)

    return set_up


def _unbuffer_c_stdout() -> None:
    """C code's ``printf`` would sit in libc's buffer and die with a crashing worker; make it write through."""
    try:  # noqa: SIM105 - not contextlib: one import less at every start
        libc.call("setvbuf", libc.c_variable(libc.CPointer, "stdout"), None, 2, 0)  # 2: _IONBF
    except (OSError, ValueError):
        pass


def install(log_format: str, log_level: str, *, tag_output: bool = False) -> HandlerOutput:
    """Route the handler's output through :class:`HandlerOutput`; returns it, to set ``request_id`` on."""
    output = HandlerOutput(log_format, tag_output=tag_output)
    faulthandler.enable(file=2, all_threads=True)  # a segfault leaves the Python stack in the log (untagged)
    # and so does a hang: the supervisor sends this signal just before it kills a worker at the deadline
    faulthandler.register(STACK_DUMP_SIGNAL, file=2, all_threads=True)
    _unbuffer_c_stdout()
    sys.stdout = LogStream(output, "INFO", "stdout", 1)
    sys.stderr = LogStream(output, "ERROR", "stderr", 2)
    builtins.print = _print
    # logging and traceback are set up as awslambdaric sets them up, but only once something imports them (most
    # often the user's code: then before its import statement returns), so that a function that never uses them
    # does not pay for them (see on_import.py)
    when_imported("traceback", _one_write_tracebacks)
    when_imported("logging", _logging_set_up(output, log_level))
    return output
