"""The ``errorType`` names this runtime reports, and the shape of a Lambda error object.

Both processes use them: the worker for init and handler failures it can describe itself, the supervisor for the
faults the worker cannot report (it crashed, hung, grew too large or sent garbage).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from enum import StrEnum as _Names
    from typing import Any
else:
    _Names = object  # mypy reads an enum; at run time plain str constants (an enum class costs ~0.1 ms at start)


class ErrorType(_Names):
    # init, reported by the worker (names as awslambdaric uses them)
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    IMPORT_MODULE = "Runtime.ImportModuleError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    USER_CODE_SYNTAX = "Runtime.UserCodeSyntaxError"
    # per invocation, reported by the worker
    UNMARSHAL = "Runtime.UnmarshalError"
    MARSHAL = "Runtime.MarshalError"
    CONTEXT_UNMARSHAL = "Runtime.LambdaContextUnmarshalError"
    RESPONSE_SIZE_TOO_LARGE = "Runtime.ResponseSizeTooLarge"
    # faults the supervisor observes
    EXIT = "Runtime.ExitError"
    TIMEOUT = "Runtime.Timeout"
    OUT_OF_MEMORY = "Runtime.OutOfMemory"
    INVALID_WORKER_MESSAGE = "Runtime.InvalidWorkerMessage"
    EVENT_METADATA_TOO_LARGE = "Runtime.EventMetadataTooLarge"
    INIT_TIMEOUT = "Runtime.InitTimeout"
    CONFIGURATION = "Runtime.InvalidConfiguration"


def error_object(error_type: str, message: str, stack_trace: list[str] | None = None) -> dict[str, Any]:
    """A Lambda error object as the Runtime API's error endpoints take it."""
    return {"errorMessage": message, "errorType": error_type, "stackTrace": stack_trace or []}


def response_size_message(size: int, limit: int) -> str:
    """The message for a response over the payload limit, worded as Lambda words it."""
    return f"Response payload size ({size} bytes) exceeded maximum allowed payload size ({limit} bytes)."


def exception_error_object(
    error: BaseException,
    error_type: str | None = None,
    message: str | None = None,
    *,
    hide_prefixes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Describe an exception the way awslambdaric does: the class name, ``str(error)`` and the formatted frames.

    Frames whose file name starts with one of ``hide_prefixes`` (the runtime's own code, importlib's machinery)
    are left out: the user should see where *their* code failed.
    """
    import traceback  # only here: the supervisor, which never formats an exception, does without it

    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if not frame.filename.startswith(hide_prefixes)]
    if message is None:
        try:
            message = str(error)
        except Exception:  # an exception whose __str__ itself raises
            message = f"<unprintable {type(error).__name__}>"
    # from tuples, as awslambdaric: without Python 3.11's ^^^^ markers under the failing expression
    stack = traceback.format_list([(frame.filename, frame.lineno or 0, frame.name, frame.line) for frame in frames])
    return error_object(error_type or type(error).__name__, message, stack)
