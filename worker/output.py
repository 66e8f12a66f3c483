"""The handler's output, as log events tagged with the request id: ``print``, ``sys.stdout/stderr`` and ``logging``.

Everything is written straight to file descriptor 1 with one ``os.write`` per event: nothing is buffered in this
process, so whatever the handler wrote is out before it can crash. One event per ``write`` call (and per ``print``
call, which is made one call, and per ``traceback.print_exception``), in Lambda's Text or JSON log format (see
:mod:`lambda_supervisor.shared.logline`). Output that bypasses Python (C code, child processes) goes to the same
descriptors untagged; C's own ``stdout`` is made unbuffered so that it too survives a crash.
"""

from __future__ import annotations

import builtins
import ctypes
import errno
import faulthandler
import io
import logging
import os
import select
import sys
import time
import traceback
from typing import Any

from lambda_supervisor.shared.logline import JSON, json_line, text_line
from lambda_supervisor.shared.protocol import STACK_DUMP_SIGNAL

from .error_log import error_log_line

#: Lambda's application log levels, as ``logging`` levels (TRACE is below DEBUG).
LEVELS = {"TRACE": 5, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
          "ERROR": logging.ERROR, "FATAL": logging.CRITICAL}
_STANDARD_RECORD_KEYS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class HandlerOutput:
    """Where and how the handler's log events are written; ``request_id`` is the invocation in progress."""

    def __init__(self, log_format: str, fd: int = 1) -> None:
        self.json = log_format.upper() == JSON
        self.fd = fd
        self.request_id: str | None = None

    def event(self, level: str, message: str, logger: str, extra: dict[str, Any] | None = None,
              created: float | None = None) -> None:
        seconds = time.time() if created is None else created
        if self.json:
            line = json_line(seconds, self.request_id, level, message, logger, extra)
        else:
            line = text_line(seconds, self.request_id, level, message)
        _write_all(self.fd, line.encode("utf-8", "backslashreplace"))

    def log_error(self, error: dict[str, Any]) -> None:
        """Log an error about to be reported (an invocation's or init's), untagged, as awslambdaric logs it
        (see error_log)."""
        line = error_log_line(error, self.request_id or "", json_format=self.json)
        _write_all(self.fd, line.encode("utf-8", "backslashreplace"))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:  # someone made the descriptor non-blocking: wait until it drains
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
        size = len(text)
        if self._line_open and text.startswith("\n"):  # the end of a line we already wrote out
            text = text[1:]
            self._line_open = False
        if text:
            self._line_open = not text.endswith("\n")
            self._output.event(self._level, text[:-1] if not self._line_open else text, self._name)
        return size


class _BinaryStream(io.RawIOBase):
    """``sys.stdout.buffer``: bytes are decoded and written as one event."""

    def __init__(self, stream: LogStream) -> None:
        super().__init__()
        self._stream = stream

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._stream.fileno()

    def write(self, data: Any) -> int:
        raw = bytes(data)
        self._stream.write(raw.decode("utf-8", "backslashreplace"))
        return len(raw)


class LambdaLogHandler(logging.Handler):
    """The root logger's handler: each record one event; a formatter the user sets is honoured in Text format."""

    def __init__(self, output: HandlerOutput) -> None:
        super().__init__()
        self._output = output

    def emit(self, record: logging.LogRecord) -> None:
        try:
            extra: dict[str, Any] = {key: value for key, value in vars(record).items()
                                     if key not in _STANDARD_RECORD_KEYS}
            if self._output.json:
                message = record.getMessage()
                if record.exc_info and record.exc_info[1] is not None:
                    error = record.exc_info[1]
                    extra.update(errorType=type(error).__name__, errorMessage=str(error),
                                 stackTrace=traceback.format_tb(error.__traceback__))
                elif record.stack_info:
                    extra["stackInfo"] = record.stack_info
            elif self.formatter is not None:
                message = self.format(record)
            else:
                message = record.getMessage()
                if record.exc_info:
                    message += "\n" + logging.Formatter().formatException(record.exc_info)
                if record.stack_info:
                    message += "\n" + record.stack_info
            self._output.event(record.levelname, message, record.name, extra, record.created)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


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
_builtin_print_exception = traceback.print_exception


def _print_exception(exc: Any, /, value: Any = _MISSING, tb: Any = _MISSING, limit: int | None = None,
                     file: Any = None, chain: bool = True) -> None:
    """``traceback.print_exception`` (and ``print_exc``) as one ``write``: a traceback is one log event."""
    given = (exc,) if value is _MISSING and tb is _MISSING else (exc, value, tb)
    stream = sys.stderr if file is None else file
    if isinstance(stream, LogStream):
        stream.write("".join(traceback.format_exception(*given, limit=limit, chain=chain)))
    else:
        _builtin_print_exception(*given, limit=limit, file=file, chain=chain)


def _unbuffer_c_stdout() -> None:
    """C code's ``printf`` would sit in libc's buffer and die with a crashing worker; make it write through."""
    try:
        libc = ctypes.CDLL(None)
        libc.setvbuf(ctypes.c_void_p.in_dll(libc, "stdout"), None, 2, 0)  # 2: _IONBF
    except (OSError, AttributeError, ValueError):
        pass


def install(log_format: str, log_level: str) -> HandlerOutput:
    """Route the handler's output through :class:`HandlerOutput`; returns it, to set ``request_id`` on."""
    output = HandlerOutput(log_format)
    faulthandler.enable(file=2, all_threads=True)  # a segfault leaves the Python stack in the log (untagged)
    # and so does a hang: the supervisor sends this signal just before it kills a worker at the deadline
    faulthandler.register(STACK_DUMP_SIGNAL, file=2, all_threads=True)
    _unbuffer_c_stdout()
    sys.stdout = LogStream(output, "INFO", "stdout", 1)
    sys.stderr = LogStream(output, "ERROR", "stderr", 2)
    builtins.print = _print
    traceback.print_exception = _print_exception
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(LambdaLogHandler(output))
    level = LEVELS.get(log_level.upper()) if log_level else (logging.INFO if output.json else None)
    if level is not None:
        root.setLevel(level)
    logging.addLevelName(5, "TRACE")
    return output
