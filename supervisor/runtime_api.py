"""Client of the Lambda Runtime API, over one keep-alive HTTP/1.1 connection (http_connection.py; a second one
only for a post retried while ``next`` waits on the first). Retrying is tenacity's, imported and entered only
after a first failure.

Transient faults (connection refused or reset, timeouts, 5xx) are retried with jittered exponential backoff for
at most ``retry_seconds``; only after that is the Runtime API considered gone, which is the one reason the
supervisor exits on its own. A 4xx on a response or error post is the Runtime API refusing that one post (an
unknown or already-answered request, a payload too large): it is logged and the loop goes on. "Already answered"
(403 ``InvalidStateTransition``) is told apart: when our first attempt gets it, someone else answered the request.

A post may ask for the next event in the same write (``ask_next``): the Runtime API answers both in order, and
the long poll begins without waiting for the post's answer to reach us and a request to go back. Should that post
be retried, the retry goes over a second connection, so that it never queues behind the long poll.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from enum import Enum

from lambda_supervisor.shared.printable import error_type_header, log_safe
from lambda_supervisor.shared.protocol import JSON_CONTENT_TYPE, RESULT_CONTENT_TYPES, InvokeMessage

from .http_connection import HttpConnection, ResponseParseError, UnsafeRequest
from .logs import log

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's

if TYPE_CHECKING:
    from typing import Any, NamedTuple

    from tenacity import RetryCallState, Retrying
else:
    from lambda_supervisor.shared.named_tuple import NamedTuple

API_VERSION = "2018-06-01"
CONNECT_TIMEOUT_S = 3.0
POST_READ_TIMEOUT_S = 30.0
#: Used when the Runtime API gives no usable deadline (it always does on Lambda): Lambda's maximum timeout.
FALLBACK_TIMEOUT_MS = 900_000
#: The characters a request id may have to go into a path unquoted (RFC 3986's unreserved ones).
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"


class TransientApiError(Exception):
    """A fault worth retrying: the Runtime API answered 5xx (or an unexpected status for ``next``)."""


class RuntimeApiUnavailable(Exception):
    """The Runtime API stayed unreachable for the whole retry budget."""


class MalformedInvocation(Exception):
    """``next`` returned something that is not an invocation we can answer (no request id)."""


class Invocation(NamedTuple):
    """One event handed out by ``next``: its metadata and the raw, unparsed body. A NamedTuple (one C call to
    build, on every invocation's path), immutable like the supervisor's other values."""

    request_id: str
    deadline_ms: int
    invoked_function_arn: str
    trace_id: str | None
    client_context: str | None
    cognito_identity: str | None
    #: Raw, unparsed. A large body is a view of the connection's body buffer, valid until the next ``next``.
    body: bytes | memoryview
    tenant_id: str | None
    received_monotonic: float

    def seconds_left(self) -> float:
        return self.deadline_ms / 1000 - time.time()

    def worker_message(self, soft_timeout_ms: int = 0) -> InvokeMessage:
        """The metadata the worker needs to build ``context`` (the invoke frame's header)."""
        return InvokeMessage(
            self.request_id,
            self.deadline_ms,
            self.invoked_function_arn,
            self.trace_id,
            self.client_context,
            self.cognito_identity,
            self.tenant_id,
            self.deadline_ms - soft_timeout_ms if soft_timeout_ms else None,
        )


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    name = getattr(state.fn, "__name__", "call")
    log("WARNING", f"runtime api fault, retrying: call={name} attempt={state.attempt_number} "
                   f"wait_ms={wait * 1000:.0f} error={error!r}")


def _error_headers(error: dict[str, Any]) -> dict[str, str]:
    """The error type goes in a header, where user code's class name must not inject anything (see
    shared/printable.py); the body keeps the real name."""
    return {"Lambda-Runtime-Function-Error-Type": error_type_header(error.get("errorType"))}


def _invocation_path(request_id: str, kind: str) -> str:
    """The post path of an invocation; its id is quoted, so that no id can change the path or break the request
    line."""
    if not request_id or request_id.strip(_UNRESERVED):  # Lambda's are UUIDs: quoting those is time wasted
        from urllib.parse import quote  # so only here: it is one of the bootstrap's largest imports

        request_id = quote(request_id, safe="")
    return f"invocation/{request_id}/{kind}"


def _error_body(request_id: str, error: dict[str, Any]) -> bytes:
    """The error object with its request id, its keys in awslambdaric's order."""
    ordered = {"errorMessage": error.get("errorMessage"), "errorType": error.get("errorType"), "requestId": request_id,
               "stackTrace": error.get("stackTrace", [])}
    return json.dumps({**ordered, **error, "requestId": request_id}).encode("utf-8")


class PostResult(Enum):
    """How the Runtime API took a post; true only when it accepted it."""

    ACCEPTED = "accepted"
    #: 403 InvalidStateTransition on our first attempt: the request was answered, and not by us.
    ALREADY_ANSWERED = "already-answered"
    REFUSED = "refused"  # any other 4xx: an unknown request id, a payload too large

    def __bool__(self) -> bool:
        return self is PostResult.ACCEPTED


#: The status and errorType with which the Runtime API refuses a second answer to one request.
ALREADY_ANSWERED_STATUS = 403
ALREADY_ANSWERED_ERROR_TYPE = "InvalidStateTransition"


def _refusal(status: int, answer: bytes, *, first: bool) -> PostResult:
    """Classify a 4xx. A retried post may be refused because an earlier attempt did reach the API (its answer was
    lost): only a first attempt's "already answered" proves that someone else answered."""
    try:
        error_type = json.loads(answer).get("errorType")
    except (ValueError, AttributeError):
        error_type = None
    if status == ALREADY_ANSWERED_STATUS and error_type == ALREADY_ANSWERED_ERROR_TYPE:
        if first:
            return PostResult.ALREADY_ANSWERED
        log("WARNING", "runtime api says the request was already answered: an earlier attempt of this post "
                       "reached it, though its answer was lost")
        return PostResult.ACCEPTED
    return PostResult.REFUSED


#: What a call may fail with that is worth another try.
RETRYABLE = (OSError, ResponseParseError, TransientApiError)


class RuntimeApiClient:
    def __init__(self, address: str, *, retry_seconds: float = 10.0, user_agent: str = "lambda-supervisor",
                 interruptible: bool = False) -> None:
        """``interruptible``: :meth:`stop_polling` may end a long poll from another thread (several slots)."""
        self.base_path = f"/{API_VERSION}/runtime"
        self.address = address
        host, _, port = address.rpartition(":")
        self._host_port = (host.strip("[]"), int(port))
        self._user_agent = user_agent
        self._connection = self._open(interruptible=interruptible)
        self._side_connection: HttpConnection | None = None  # for a post retried while a long poll is pipelined
        self._next_path = f"{self.base_path}/invocation/next"
        self._retry_seconds = retry_seconds
        self._retrying_policy: Retrying | None = None
        self._polling_stopped = False

    def _retrying(self) -> Retrying:
        """The retry policy, made (and tenacity imported) on the first failure."""
        if self._retrying_policy is None:
            from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

            self._retrying_policy = Retrying(
                stop=stop_after_delay(self._retry_seconds),
                wait=wait_random_exponential(multiplier=0.02, max=1.0),
                retry=retry_if_exception_type(RETRYABLE),
                before_sleep=_log_retry,
                reraise=True,
            )
        return self._retrying_policy

    def close(self) -> None:
        self._connection.close()
        if self._side_connection is not None:
            self._side_connection.close()

    def _open(self, *, interruptible: bool = False) -> HttpConnection:
        return HttpConnection(*self._host_port, connect_timeout_s=CONNECT_TIMEOUT_S, io_timeout_s=POST_READ_TIMEOUT_S,
                              user_agent=self._user_agent, interruptible=interruptible)

    def _side(self) -> HttpConnection:
        """The second connection, made on first use: a retried post goes there while ``next`` waits on the first."""
        if self._side_connection is None:
            self._side_connection = self._open()
        return self._side_connection

    def stop_polling(self) -> None:
        """From another thread, at shutdown: end a long poll under way whose answer has not begun, and refuse every
        later ``next`` (RuntimeApiUnavailable, not retried). An event that has begun to arrive is read, and posts
        still go out: it gets its answer."""
        self._polling_stopped = True
        self._connection.interrupt()

    def _call(self, function: Any, *args: Any) -> Any:
        """Call once; on a transient fault, go on retrying with backoff within the budget."""
        try:
            return function(*args)
        except RETRYABLE as error:
            if self._polling_stopped and function == self._get_next:  # the poll was ended on purpose
                raise RuntimeApiUnavailable("no more polling: the supervisor is shutting down") from None
            log("WARNING", f"runtime api fault, retrying: call={function.__name__} attempt=1 error={error!r}")
        try:
            return self._retrying()(function, *args)
        except RETRYABLE as error:
            raise RuntimeApiUnavailable(f"Runtime API at {self.address} unavailable: {error!r}") from error

    # -- next ---------------------------------------------------------------------------------------------------

    def next_invocation(self) -> Invocation:
        """Long-poll for the next event (no read timeout: Lambda freezes us here between invocations)."""
        headers, body = self._call(self._get_next)
        request_id = (headers.get("lambda-runtime-aws-request-id") or "").strip()
        if not request_id:
            raise MalformedInvocation("next returned an event without Lambda-Runtime-Aws-Request-Id")
        deadline_text = headers.get("lambda-runtime-deadline-ms") or ""
        try:
            deadline_ms = int(deadline_text)
        except ValueError:
            log("WARNING", f"invalid Lambda-Runtime-Deadline-Ms {deadline_text!r}: "
                           f"request_id={log_safe(request_id)}; using {FALLBACK_TIMEOUT_MS} ms")
            deadline_ms = int(time.time() * 1000) + FALLBACK_TIMEOUT_MS
        return Invocation(
            request_id=request_id,
            deadline_ms=deadline_ms,
            invoked_function_arn=headers.get("lambda-runtime-invoked-function-arn") or "",
            trace_id=headers.get("lambda-runtime-trace-id"),
            client_context=headers.get("lambda-runtime-client-context"),
            cognito_identity=headers.get("lambda-runtime-cognito-identity"),
            body=body,
            tenant_id=headers.get("lambda-runtime-aws-tenant-id"),
            received_monotonic=time.monotonic(),
        )

    def _get_next(self) -> tuple[dict[str, str], bytes | memoryview]:
        connection = self._connection
        if connection.unanswered:  # asked for with the last post: its answer is all there is to read
            response = connection.receive(long_poll=True, direct_body=True)
        elif self._polling_stopped:  # checked on every attempt: a retry after stop_polling sends nothing
            raise RuntimeApiUnavailable("no more polling: the supervisor is shutting down")
        else:
            response = connection.request("GET", self._next_path, long_poll=True, direct_body=True)
        if response.status != 200:
            raise TransientApiError(f"next answered {response.status}: {bytes(response.body[:200])!r}")
        return response.headers, response.body

    # -- posts --------------------------------------------------------------------------------------------------

    def post_response(self, request_id: str, body: bytes | memoryview, *, content_type: str = JSON_CONTENT_TYPE,
                      meanwhile: Callable[[], None] | None = None, ask_next: bool = False) -> PostResult:
        """Post a result, as ``content_type`` (one of RESULT_CONTENT_TYPES). ``meanwhile`` runs once, while the
        Runtime API handles the post (the bookkeeping of an invocation, such as its REPORT line, then costs no time
        between two invocations); it runs whatever becomes of the post. ``ask_next``: ``next`` is asked in the
        same write (see the module's docstring); :meth:`next_invocation` then reads its answer."""
        if content_type not in RESULT_CONTENT_TYPES:
            raise ValueError(f"not a result content type: {content_type[:64]!r}")
        headers = {} if content_type == JSON_CONTENT_TYPE else {"Content-Type": content_type}
        return self._post_overlapped(_invocation_path(request_id, "response"), body, headers, meanwhile, ask_next)

    def post_error(self, request_id: str, error: dict[str, Any], *, xray_cause: object = None,
                   meanwhile: Callable[[], None] | None = None, ask_next: bool = False) -> PostResult:
        """Post an error, with its X-Ray cause (``xray_cause``: the worker's, untrusted; see xray_cause.py);
        ``meanwhile`` and ``ask_next`` as for :meth:`post_response`."""
        from .xray_cause import XRAY_ERROR_CAUSE_HEADER, xray_error_cause  # errors only: off the first response's way

        body = _error_body(request_id, error)
        headers = _error_headers(error)
        cause = xray_error_cause(xray_cause, error)
        if cause is not None:
            headers[XRAY_ERROR_CAUSE_HEADER] = cause
        return self._post_overlapped(_invocation_path(request_id, "error"), body, headers, meanwhile, ask_next)

    def _post_overlapped(self, path: str, body: bytes | memoryview, headers: dict[str, str],
                         meanwhile: Callable[[], None] | None, ask_next: bool) -> PostResult:
        pending = [meanwhile] if meanwhile is not None else []
        failures: list[Exception] = []
        attempts = [0]

        def run_pending() -> None:
            # its failure must not pass for the post's (an OSError would be retried: the result posted twice)
            while pending:
                try:
                    pending.pop()()
                except Exception as error:  # raised again once the post is over
                    failures.append(error)

        try:
            result: PostResult = self._call(self._post, path, body, headers, run_pending, attempts, ask_next)
            return result
        finally:
            run_pending()  # if no attempt got as far as sending
            if failures:
                raise failures[0]

    def post_init_error(self, error: dict[str, Any]) -> bool:
        return bool(self._call(self._post, "init/error", _error_body("", error), _error_headers(error)))

    def _post(self, path: str, body: bytes | memoryview, headers: dict[str, str],
              while_waiting: Callable[[], None] | None = None, attempts: list[int] | None = None,
              ask_next: bool = False) -> PostResult:
        attempts = attempts if attempts is not None else [0]
        sent_before = attempts[0]  # earlier attempts that were sent, and so may have reached the API
        connection = self._connection
        if connection.unanswered:  # an earlier attempt's ``next`` waits there: this one must not queue behind it
            connection, ask_next = self._side(), False
        try:
            connection.send("POST", f"{self.base_path}/{path}", body, {"Content-Type": "application/json", **headers},
                            then_get=self._next_path if ask_next else None)
        except UnsafeRequest as error:  # not retried: it would be refused again
            log("ERROR", f"post not sent: path={log_safe(path)} error={error}")
            return PostResult.REFUSED
        attempts[0] += 1
        if while_waiting is not None:
            while_waiting()
        response = connection.receive()
        status, answer = response.status, bytes(response.body)
        if status >= 500:
            raise TransientApiError(f"POST {path} answered {status}: {answer[:200]!r}")
        if status >= 400:
            log("ERROR", f"runtime api refused a post: path={log_safe(path)} status={status} body={answer[:200]!r}")
            return _refusal(status, answer, first=sent_before == 0)
        return PostResult.ACCEPTED
