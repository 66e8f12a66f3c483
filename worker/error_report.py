"""What is reported about a handler's exception: its error object, with the exception's chain, and its X-Ray cause.

The error object is awslambdaric's (``errorMessage``, ``errorType``, ``stackTrace`` as ``traceback.format_list``
entries), with one addition: when the exception was raised ``from`` another, or while handling another, the
``stackTrace`` goes on after the exception's own frames with one marker entry per earlier exception,
``"Caused by: KeyError: 'id'\\n"`` (``raise ... from``) or ``"Raised while handling: KeyError: 'id'\\n"`` (raised in
an ``except`` block), each followed by that exception's frames. awslambdaric drops the chain (its issue #25).
"""

from __future__ import annotations

import os
import traceback

from lambda_supervisor.shared.errors import error_object
from lambda_supervisor.shared.xray import VALIDATION_ERROR_TYPE, StackFrame, XRayCause

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Frames kept of the exception itself (its innermost ones), and of each earlier exception in its chain.
MAX_OWN_FRAMES = 64
MAX_CHAINED_FRAMES = 16
#: How many earlier exceptions of a chain are reported.
MAX_CHAINED_EXCEPTIONS = 4
CAUSED_BY = "Caused by"
RAISED_WHILE_HANDLING = "Raised while handling"


def exception_message(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # an exception whose __str__ itself raises
        return f"<unprintable {type(error).__name__}>"


def _frames(error: BaseException, hide_prefixes: tuple[str, ...], limit: int) -> list[traceback.FrameSummary]:
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if not frame.filename.startswith(hide_prefixes)]
    return frames[-limit:]


def format_frames(frames: list[traceback.FrameSummary]) -> list[str]:
    """``traceback.format_list`` of the frames as awslambdaric formats them: from (file, line, name, code) tuples,
    so without Python 3.11's ``^^^^`` markers under the failing expression."""
    return traceback.format_list([(frame.filename, frame.lineno or 0, frame.name, frame.line) for frame in frames])


def _earlier(error: BaseException) -> tuple[str, BaseException] | None:
    """The exception this one was raised from or while handling, with the marker's wording; as Python prints it."""
    if error.__cause__ is not None:
        return CAUSED_BY, error.__cause__
    if error.__context__ is not None and not error.__suppress_context__:
        return RAISED_WHILE_HANDLING, error.__context__
    return None


def chained_stack_trace(error: BaseException, hide_prefixes: tuple[str, ...] = ()) -> list[str]:
    """The ``stackTrace``: the exception's frames, then each earlier exception of its chain (see the module)."""
    entries = format_frames(_frames(error, hide_prefixes, MAX_OWN_FRAMES))
    seen = {id(error)}
    current = error
    for _ in range(MAX_CHAINED_EXCEPTIONS):
        link = _earlier(current)
        if link is None or id(link[1]) in seen:  # a chain may loop back on itself
            break
        wording, current = link
        seen.add(id(current))
        message = exception_message(current)
        entries.append(f"{wording}: {type(current).__name__}{': ' + message if message else ''}\n")
        entries.extend(format_frames(_frames(current, hide_prefixes, MAX_CHAINED_FRAMES)))
    return entries


def working_directory() -> str:
    try:
        return os.getcwd()
    except OSError:  # the directory was removed under us
        return ""


def describe_handler_exception(error: BaseException,
                               hide_prefixes: tuple[str, ...]) -> tuple[dict[str, Any], XRayCause]:
    """The error object and the X-Ray cause for an exception the handler raised."""
    message = exception_message(error)
    error_type = type(error).__name__
    frames = _frames(error, hide_prefixes, MAX_OWN_FRAMES)
    stack = tuple(StackFrame(frame.name, frame.filename, frame.lineno or 0) for frame in frames)
    cause = XRayCause(working_directory(), error_type, message, stack)
    return error_object(error_type, message, chained_stack_trace(error, hide_prefixes)), cause


def validation_cause(message: str) -> XRayCause:
    """The X-Ray cause for an error of the runtime's own making (``Runtime.MarshalError`` and the like)."""
    return XRayCause(working_directory(), VALIDATION_ERROR_TYPE, message)
