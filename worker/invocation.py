"""Run one event through the handler and turn whatever happens into exactly one reply frame.

Everything the handler can do short of killing the process ends here as a ``result`` or an ``error`` frame:
an undecodable event, an exception, an unserialisable or oversized result. A ``MemoryError`` is reported like any
exception but marked ``fatal``, so the supervisor replaces this worker rather than trust a heap that just ran out.
``SystemExit`` and ``KeyboardInterrupt`` are deliberately not caught: a handler that exits the process ends this
worker, as it would end Lambda's own runtime, and the supervisor reports ``Runtime.ExitError``.

By default every event takes the same path, as under awslambdaric: the result goes to Lambda as it is and an
exception is an invocation error, whatever the source. Behind HTTP sources (API Gateway, function URLs, ALBs) a
returned ``http_response(...)`` is rendered and a raised ``HTTPError`` becomes its status (an unchanged function
does neither). A handler that opted in (``http``) takes a second path there: results are shaped into proxy
responses and any other exception is a bare 500 (the stack goes to the log, not to the client).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from types import CoroutineType

from lambda_supervisor.shared.errors import ErrorType, error_object, response_size_message
from lambda_supervisor.shared.payload_region import PayloadRegion
from lambda_supervisor.shared.protocol import (
    JSON_CONTENT_TYPE,
    ErrorMessage,
    InvokeMessage,
    ResultMessage,
    json_loads,
    json_text,
)

from .async_runner import AsyncRunner, is_async_handler
from .context import ContextUnmarshalError, FunctionInfo, LambdaContext
from .event_source import HTTP_SOURCES, EventSource, classify
from .registration import HandlerOptions
from .serialisers import marshal_result, to_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeGuard

    from lambda_supervisor.shared.xray import XRayCause

    from .handler_loader import Handler
    from .http import HTTPError, HTTPResponse
    from .serialisers import Deserialiser, Serialiser

TRACE_ID_VARIABLE = "_X_AMZN_TRACE_ID"
#: An error object is cut down to this size so that it always fits in a frame the supervisor accepts.
MAX_ERROR_BYTES = 128 * 1024
#: Entries kept of a stack trace: an exception's own frames and its chain's (see error_report) fit.
MAX_STACK_FRAMES = 160
MAX_STACK_LINE_CHARS = 2048
#: Frames of this runtime and of asyncio's loop are noise in the stack of a handler's exception. (asyncio is found
#: beside os, in the standard library, rather than imported: only async handlers need it.)
_HIDDEN_FRAMES = (os.path.dirname(os.path.realpath(__file__)) + os.sep,
                  os.path.join(os.path.dirname(os.path.realpath(os.__file__)), "asyncio") + os.sep)
#: What the default JSON codec raises for a value it cannot encode.
_ENCODE_ERRORS = (TypeError, ValueError, RecursionError)


#: Where HTTPError and HTTPResponse are defined: only the user's code can make one, and only by importing it.
_HTTP_MODULE = "lambda_supervisor.worker.http"


def _is_http_error(error: BaseException) -> TypeGuard[HTTPError]:
    """Whether ``error`` is worker/http.py's HTTPError, without importing it when nothing has yet (then nothing can
    be one): a function that never uses it does not pay for it."""
    module = sys.modules.get(_HTTP_MODULE)
    return module is not None and isinstance(error, module.HTTPError)


def _is_http_response(result: object) -> TypeGuard[HTTPResponse]:
    """Whether ``result`` is worker/http.py's HTTPResponse (not importing it, as :func:`_is_http_error`)."""
    module = sys.modules.get(_HTTP_MODULE)
    return module is not None and isinstance(result, module.HTTPResponse)


def _describe(error: BaseException) -> tuple[dict[str, Any], XRayCause]:
    """A handler's exception as awslambdaric reports it (error_report.py, with traceback: imported on the first)."""
    from .error_report import describe_handler_exception

    return describe_handler_exception(error, _HIDDEN_FRAMES)


class _EventDecodeError(Exception):
    pass


class _EncodeError(Exception):
    pass


def decode_event(body: bytes | memoryview, deserialiser: Deserialiser | None = None) -> Any:
    """The event as Python data: an empty body is ``{}``, as in Lambda's runtime; a custom deserialiser gets the
    body as text (empty included) and returns whatever the handler should receive. A large body is a view of the
    shared-memory region, decoded from there without a copy of its bytes first."""
    if deserialiser is not None:
        try:
            return deserialiser(str(body, "utf-8"))
        except Exception as error:  # user code: whatever it raises means it could not read this event
            raise _EventDecodeError(f"Unable to unmarshal input: {type(error).__name__}: {error}") from None
    if _is_blank(body):
        return {}
    try:
        return json_loads(body if isinstance(body, bytes) else json_text(body))  # json.loads, exactly
    except (ValueError, RecursionError) as error:
        raise _EventDecodeError(f"Unable to unmarshal input: {error}") from None


_BLANK = frozenset(b" \t\n\r\x0b\x0c")  # what bytes.strip() strips


def _is_blank(body: bytes | memoryview) -> bool:
    """``not body.strip()``, without copying a view whose first byte already says no."""
    if isinstance(body, bytes):
        return not body.strip()
    return not body or (body[0] in _BLANK and not bytes(body).strip())


def encode_result(result: Any, serialiser: Serialiser | None = None) -> tuple[bytes, str]:
    """The response body and its content type; raises _EncodeError with the message for ``Runtime.MarshalError``.
    By default as awslambdaric: ``bytes`` raw (``application/unknown``), anything else JSON."""
    if serialiser is None:
        try:
            return marshal_result(result)
        except _ENCODE_ERRORS as error:
            raise _EncodeError(f"Unable to marshal response: {error}") from None
    try:
        payload = serialiser(result)
    except Exception as error:  # user code
        raise _EncodeError(f"Unable to marshal response: {type(error).__name__}: {error}") from None
    if isinstance(payload, str):
        return payload.encode("utf-8"), JSON_CONTENT_TYPE
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload), JSON_CONTENT_TYPE
    raise _EncodeError(f"Unable to marshal response: the serialiser returned {type(payload).__name__}, "
                       "not str or bytes")


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


def error_frame(request_id: str, error: dict[str, Any], *, fatal: bool = False, xray: XRayCause | None = None,
                payload: bytes | None = None) -> bytes:
    """The ``error`` frame; its header carries the X-Ray cause (bounded), which the supervisor checks again."""
    cause = xray.bounded().to_data() if xray is not None else None
    message = ErrorMessage(request_id, error["errorType"], fatal, cause)
    return message.encode(bounded_error_payload(error) if payload is None else payload)


def _set_trace_id(trace_id: str | None) -> None:
    """Expose the X-Ray trace id to the handler (and the X-Ray SDK) the way Lambda does, for this call only."""
    if trace_id:
        os.environ[TRACE_ID_VARIABLE] = trace_id
    else:
        os.environ.pop(TRACE_ID_VARIABLE, None)


class Invoker:
    """The handler with its options, ready to run invoke frames; built once at init. ``error_log`` logs an
    invocation's error object (as posted) before it is reported, as awslambdaric does."""

    def __init__(self, handler: Handler, function: FunctionInfo, max_response_bytes: int,
                 options: HandlerOptions | None = None, runner: AsyncRunner | None = None,
                 error_log: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.handler = handler
        self.function = function
        self.max_response_bytes = max_response_bytes
        self.options = options if options is not None else HandlerOptions()
        self.runner = runner if runner is not None else AsyncRunner()
        self.error_log = error_log
        #: The worker's shared-memory region, set by the serving loop: large results are put there.
        self.region: PayloadRegion | None = None
        self._is_async = is_async_handler(self.handler)
        if self._is_async:
            self.runner.loop  # noqa: B018 - create the loop at init, not during the first (billed) call
        if self.options.http or self.options.decode_base64:  # at init too: what the first HTTP event will need
            from . import http_shaping, request_body  # noqa: F401

    def __call__(self, message: InvokeMessage, body: bytes | memoryview) -> bytes:
        """Call the handler for one ``invoke`` frame and return the encoded reply frame."""
        request_id = message.request_id
        _set_trace_id(message.trace_id)
        try:  # in awslambdaric's order: the context, then the event
            context = self._context(message)
            event = decode_event(body, self.options.deserialiser)
        except ContextUnmarshalError as error:
            return self._fail(request_id, error_object(ErrorType.CONTEXT_UNMARSHAL, str(error)))
        except _EventDecodeError as error:
            return self._fail(request_id, error_object(ErrorType.UNMARSHAL, str(error)))
        source = context.event_source = classify(event)
        behind_http = source in HTTP_SOURCES
        if behind_http and self.options.decode_base64:
            from .request_body import decode_base64_body

            decode_base64_body(event)
        if behind_http and self.options.http:
            return self._run_http(request_id, source, event, context)
        try:
            result = self._call(event, context)
        except MemoryError as error:
            return self._fail(request_id, *_describe(error), fatal=True)
        except Exception as error:
            if behind_http and _is_http_error(error):  # the handler chose an HTTP answer
                from .http_shaping import http_error_response

                return self._result_frame(request_id, to_json(http_error_response(error, source, event)).encode())
            return self._fail(request_id, *_describe(error))
        if behind_http and self.options.serialiser is None and _is_http_response(result):
            from .http_shaping import render

            result = render(result, source, event)
        try:
            payload, content_type = encode_result(result, self.options.serialiser)
        except _EncodeError as error:
            return self._fail(request_id, error_object(ErrorType.MARSHAL, str(error)))
        return self._result_frame(request_id, payload, content_type)

    def _context(self, message: InvokeMessage) -> LambdaContext:
        return LambdaContext(
            self.function,
            aws_request_id=message.request_id,
            deadline_ms=message.deadline_ms,
            invoked_function_arn=message.invoked_function_arn or None,
            client_context=message.client_context,
            cognito_identity=message.cognito_identity,
            tenant_id=message.tenant_id,
        )

    def _fail(self, request_id: str, error: dict[str, Any], xray: XRayCause | None = None, *,
              fatal: bool = False) -> bytes:
        """Log the error as awslambdaric does, then make its frame; a runtime error's X-Ray type is awslambdaric's
        ``LambdaValidationError``."""
        payload = bounded_error_payload(error)
        self._log_error(error, payload)
        if xray is None:
            from .error_report import validation_cause

            xray = validation_cause(str(error["errorMessage"]))
        return error_frame(request_id, error, fatal=fatal, xray=xray, payload=payload)

    def _log_error(self, error: dict[str, Any], payload: bytes | None = None) -> None:
        """Log an error object as awslambdaric does (as it is posted, after bounding). The log line is a courtesy:
        the error must be reported whatever becomes of it."""
        if self.error_log is not None:
            try:  # noqa: SIM105 - not contextlib: one import less at every start
                self.error_log(json.loads(bounded_error_payload(error) if payload is None else payload))
            except Exception:
                pass

    def _call(self, event: Any, context: LambdaContext) -> Any:
        if self._is_async:
            return self.runner.run(self.handler(event, context))
        result = self.handler(event, context)
        if isinstance(result, CoroutineType):  # a sync wrapper around an async function
            return self.runner.run(result)
        return result

    def _run_http(self, request_id: str, source: EventSource, event: dict[str, Any], context: LambdaContext) -> bytes:
        """The opted-in HTTP path: whatever the handler does, its caller gets a proxy response (or, for a MemoryError,
        the worker is replaced and Lambda's error stands, as for any event)."""
        from .http import HTTPError  # imported at init with the option
        from .http_shaping import http_error_response, internal_error_response, shape_result

        serialiser = self.options.serialiser
        try:
            result = self._call(event, context)
            # A custom serialiser owns the response: it gets the handler's result unshaped.
            payload, content_type = encode_result(result if serialiser else shape_result(result, source, event),
                                                  serialiser)
        except MemoryError as error:
            return self._fail(request_id, *_describe(error), fatal=True)
        except HTTPError as error:
            return self._result_frame(request_id, to_json(http_error_response(error, source, event)).encode("utf-8"))
        except Exception as error:  # the handler's, or its result's encoding; for the log, not the client
            failure = (error_object(ErrorType.MARSHAL, str(error)) if isinstance(error, _EncodeError)
                       else _describe(error)[0])
            self._log_error(failure)
            return self._result_frame(request_id, to_json(internal_error_response(source, event)).encode("utf-8"))
        return self._result_frame(request_id, payload, content_type)

    def _result_frame(self, request_id: str, payload: bytes, content_type: str = JSON_CONTENT_TYPE) -> bytes:
        if len(payload) > self.max_response_bytes:
            message = response_size_message(len(payload), self.max_response_bytes)
            return self._fail(request_id, error_object(ErrorType.RESPONSE_SIZE_TOO_LARGE, message))
        if self.region is not None and self.region.fits(len(payload)):
            return ResultMessage(request_id, content_type, self.region.put(payload)).encode(b"")
        return ResultMessage(request_id, content_type).encode(payload)
