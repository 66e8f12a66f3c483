"""Run one event through the handler and turn whatever happens into exactly one reply frame.

Everything the handler can do short of killing the process ends here as a ``result`` or an ``error`` frame:
an undecodable event, an exception, an unserialisable or oversized result. A ``MemoryError`` is reported like any
exception but marked ``fatal``, so the supervisor replaces this worker rather than trust a heap that just ran out.
``SystemExit`` and ``KeyboardInterrupt`` are deliberately not caught: a handler that exits the process ends this
worker, as it would end Lambda's own runtime, and the supervisor reports ``Runtime.ExitError``.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any

from lambda_supervisor.shared.errors import ErrorType, error_object, exception_error_object, response_size_message
from lambda_supervisor.shared.protocol import MessageType, encode_frame

from .context import FunctionInfo, LambdaContext
from .handler_loader import Handler

TRACE_ID_VARIABLE = "_X_AMZN_TRACE_ID"
#: An error object is cut down to this size so that it always fits in a frame the supervisor accepts.
MAX_ERROR_BYTES = 128 * 1024
MAX_STACK_FRAMES = 64
MAX_STACK_LINE_CHARS = 2048


class _EventDecodeError(Exception):
    pass


def decode_event(body: bytes) -> Any:
    """The event as Python data: an empty body is ``{}``, as in Lambda's runtime."""
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:
        raise _EventDecodeError(f"Unable to unmarshal input: {error}") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_result(result: Any) -> bytes:
    return json.dumps(result, default=_json_default, ensure_ascii=False).encode("utf-8")


def _dump_error(error: dict[str, Any]) -> bytes:
    # "replace": a lone surrogate (legal in a Python str, e.g. in a message) must not make the error unencodable
    return json.dumps(error, ensure_ascii=False, default=str).encode("utf-8", "replace")


def bounded_error_payload(error: dict[str, Any]) -> bytes:
    """Serialise an error object, trimming the stack and then the message until it fits ``MAX_ERROR_BYTES``.

    The result is always complete JSON: characters can take up to 6 bytes once encoded (a control character
    becomes ``\\uXXXX``), so the message is cut by characters until the bytes fit, never the bytes themselves."""
    error = dict(error)
    error["stackTrace"] = [str(line) for line in error.get("stackTrace", [])][-MAX_STACK_FRAMES:]
    payload = _dump_error(error)
    if len(payload) <= MAX_ERROR_BYTES:
        return payload
    error["stackTrace"] = [line[:MAX_STACK_LINE_CHARS] for line in error["stackTrace"][-8:]]
    message = str(error.get("errorMessage", ""))
    keep = MAX_ERROR_BYTES // 4
    while True:
        error["errorMessage"] = message[:keep] + f"... [{len(message)} characters, truncated]"
        payload = _dump_error(error)
        if len(payload) <= MAX_ERROR_BYTES or keep == 0:
            return payload
        keep //= 2


def error_frame(request_id: str, error: dict[str, Any], *, fatal: bool = False) -> bytes:
    header = {"type": MessageType.ERROR, "request_id": request_id, "error_type": error["errorType"], "fatal": fatal}
    return encode_frame(header, bounded_error_payload(error))


def _describe_handler_exception(error: Exception) -> dict[str, Any]:
    """The error object for an exception from the handler, without this runtime's own frame in the stack."""
    try:
        message = str(error)
    except Exception:  # an exception whose __str__ itself raises
        message = f"<unprintable {type(error).__name__}>"
    if error.__traceback__ is not None:
        error = error.with_traceback(error.__traceback__.tb_next)
    return exception_error_object(error, message=message)


def _set_trace_id(trace_id: str | None) -> None:
    """Expose the X-Ray trace id to the handler (and the X-Ray SDK) the way Lambda does, for this call only."""
    if trace_id:
        os.environ[TRACE_ID_VARIABLE] = trace_id
    else:
        os.environ.pop(TRACE_ID_VARIABLE, None)


def run_invocation(
    handler: Handler,
    function: FunctionInfo,
    header: dict[str, Any],
    body: bytes,
    *,
    max_response_bytes: int,
) -> bytes:
    """Call the handler for one ``invoke`` frame and return the encoded reply frame."""
    request_id = str(header["request_id"])
    _set_trace_id(header.get("trace_id"))
    context = LambdaContext(
        function,
        aws_request_id=request_id,
        deadline_ms=int(header["deadline_ms"]),
        invoked_function_arn=str(header.get("invoked_function_arn") or ""),
        client_context=header.get("client_context"),
        cognito_identity=header.get("cognito_identity"),
    )
    try:
        event = decode_event(body)
    except _EventDecodeError as error:
        return error_frame(request_id, error_object(ErrorType.UNMARSHAL, str(error)))
    try:
        result = handler(event, context)
    except MemoryError as error:
        return error_frame(request_id, _describe_handler_exception(error), fatal=True)
    except Exception as error:
        return error_frame(request_id, _describe_handler_exception(error))
    try:
        payload = encode_result(result)
    except (TypeError, ValueError, RecursionError) as error:
        return error_frame(request_id, error_object(ErrorType.MARSHAL, f"Unable to marshal response: {error}"))
    if len(payload) > max_response_bytes:
        message = response_size_message(len(payload), max_response_bytes)
        return error_frame(request_id, error_object(ErrorType.RESPONSE_SIZE_TOO_LARGE, message))
    return encode_frame({"type": MessageType.RESULT, "request_id": request_id}, payload)
