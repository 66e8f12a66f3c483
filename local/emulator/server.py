"""A loopback HTTP emulator of the AWS Lambda Runtime API, plus the invoke endpoint of AWS's Runtime Interface Emulator.

The runtime under test talks to ``/2018-06-01/runtime/...`` exactly as it would on Lambda; a person (curl) or a test
submits invocations through ``POST /2015-03-31/functions/function/invocations`` or the Python API
(:meth:`RuntimeApiEmulator.submit` / :meth:`RuntimeApiEmulator.invoke`) and reads back what the runtime posted.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import socket
import socketserver
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from loguru import logger

from .deadlines import DeadlineKeeper
from .faults import Delay, Fault, Injection, LostAnswer, Reset, Status
from .records import InvocationRecord, Post, PostedError

MAX_BODY_BYTES = 64 * 1024 * 1024
# The largest response AWS's Runtime API accepts from a runtime: 6 MiB plus 100 bytes, as AWS's emulator enforces it.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100
_ALIVE_CHECK_S = 0.25  # how often a blocked /next checks that its client is still connected
_STOP_DRAIN_S = 2.0  # how long stop() lets requests in hand finish their replies

_RUNTIME_PREFIX = "/2018-06-01/runtime/"
_NEXT_PATH = "/2018-06-01/runtime/invocation/next"
_INIT_ERROR_PATH = "/2018-06-01/runtime/init/error"
_POST_PATH = re.compile(r"^/2018-06-01/runtime/invocation/([^/]+)/(response|error)$")
_FUNCTION_ARN = "arn:aws:lambda:us-east-1:012345678912:function:"
_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/[^/]+/invocations$")


class Reply(NamedTuple):
    status: HTTPStatus
    body: bytes = b""
    headers: Mapping[str, str] = {}
    handed_out_id: str | None = None  # set on a /next reply: requeue this invocation if the reply cannot be sent
    reset: bool = False  # send nothing: reset the connection instead (an injected fault)
    lose_answer: bool = False  # handle the request normally, then reset the connection instead of answering


def _json_reply(status: HTTPStatus, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


def _error_reply(status: HTTPStatus, error_type: str, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    return _json_reply(status, {"errorType": error_type, "errorMessage": message}, headers)


def _stopped_reply(headers: Mapping[str, str]) -> Reply:
    return _error_reply(HTTPStatus.SERVICE_UNAVAILABLE, "Emulator.Stopped", "the emulator is stopping", headers)


def _new_trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


class RuntimeApiEmulator:
    """The emulator. Thread-safe: one lock, one condition that every waiter re-checks its predicate on."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        function_timeout_s: float = 3.0,
        function_name: str = "function",
        no_response_grace_s: float = 5.0,
        on_timeout: Callable[[InvocationRecord], None] | None = None,
    ) -> None:
        """``on_timeout`` is called (in a thread of its own) when an invocation's deadline passes without a post,
        as Lambda resets the execution environment then: give it a function that kills and restarts the runtime.
        Until it returns, no invocation is handed out: the runtime being reset must not take the next one."""
        self.function_timeout_s = function_timeout_s
        self.function_name = function_name
        self.no_response_grace_s = no_response_grace_s
        self.on_timeout = on_timeout
        # Called (in a thread of its own) when an invocation arrives after a failed init, if set: the invocation is
        # queued for a runtime this hook starts again, as Lambda retries init on the next invocation. Unset, the init
        # error answers every later invocation at once.
        self.on_init_retry: Callable[[], None] | None = None
        self._init_failures = 0  # init errors ever posted, including those a retry cleared
        self._last_init_error: PostedError | None = None
        #: Resets under way, by the request that timed out: from its expiry until on_timeout returns, no hand-out.
        self._resets: dict[str, Callable[[InvocationRecord], None]] = {}
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        self._deadlines = DeadlineKeeper(lock, self._deadline_passed)  # handed out, not answered yet
        self._records: dict[str, InvocationRecord] = {}  # insertion order is submit order
        self._queue: deque[str] = deque()  # submitted, not yet handed out
        self._init_errors: list[PostedError] = []
        self._next_polls = 0
        self._polls_waiting = 0  # GET /next requests blocked right now, waiting for an invocation
        self._last_hand_out = 0.0  # time.monotonic() of the latest hand-out by GET /next
        self._closed = False
        self._injections: list[Injection] = []
        self._fired_cleared = 0  # faults fired by injections no longer armed
        self._generation = 0  # bumped by restart(): long polls from before it end
        self._thread: threading.Thread | None = None
        self._host = host
        self._server = _Server((host, port), _Handler, self)

    # ----------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> RuntimeApiEmulator:
        with self._cond:
            if self._closed or self._thread is not None:
                raise RuntimeError("a RuntimeApiEmulator can be started once, and not after stop()")
            # A short poll interval keeps stop() quick: serve_forever only notices shutdown() between polls.
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
            self._thread.start()
            self._deadlines.start()
        logger.debug("runtime API emulator listening on {}", self.address)
        return self

    def stop(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()  # blocked /next and invoke requests answer and end
            thread = self._thread
        if thread is not None:
            self._deadlines.stop()
            self._server.shutdown()
            thread.join()
        self._server.server_close()
        self._server.close_connections()
        logger.debug("runtime API emulator stopped")

    def restart(self, down_s: float = 0.0) -> None:
        """Stop listening and drop every connection (a blocked ``next`` sees its connection close), stay down for
        ``down_s`` seconds, then listen again on the same port. Submitted invocations and records survive; an
        invocation whose ``next`` reply was cut off is handed out again."""
        with self._cond:
            if self._closed or self._thread is None:
                raise RuntimeError("only a running emulator can restart")
            server, thread = self._server, self._thread
        port = self.port
        server.shutdown()
        thread.join()
        server.server_close()
        server.drop_connections()
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
            if self._cond.wait_for(lambda: self._closed, down_s):  # the outage; stop() ends it early
                return
            self._server = _Server((self._host, port), _Handler, self)
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
            self._thread.start()
        logger.debug("runtime API emulator restarted on {}", self.address)

    # ------------------------------------------------------------------------------------------------ faults

    def inject(self, path_pattern: str, fault: Fault, *, times: int | None = 1, method: str | None = None) -> Injection:
        """Arm ``fault`` for the next ``times`` runtime requests (None: all, until :meth:`clear_faults`) whose path
        matches ``path_pattern`` (``re.search``) and, if given, whose method is ``method``."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None)")
        injection = Injection(re.compile(path_pattern), fault, method.upper() if method else None, times)
        with self._cond:
            self._injections.append(injection)
        return injection

    def clear_faults(self) -> None:
        with self._cond:
            self._fired_cleared += sum(injection.fired for injection in self._injections)
            self._injections.clear()

    @property
    def faults_fired(self) -> int:
        """How many runtime requests got an injected fault, over the emulator's life."""
        with self._cond:
            return sum(injection.fired for injection in self._injections) + self._fired_cleared

    def __enter__(self) -> RuntimeApiEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def address(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self.port}"

    @property
    def invoke_url(self) -> str:
        return f"http://{self.address}/2015-03-31/functions/function/invocations"

    # ------------------------------------------------------------------------------------------------ submitting

    def submit(
        self,
        body: bytes | str | dict[str, Any] = b"",
        *,
        timeout_s: float | None = None,
        trace_id: str | None = None,
        client_context: str | None = None,
        cognito_identity: str | None = None,
        tenant_id: str | None = None,
        request_id: str | None = None,
    ) -> str:
        """Queue an invocation for the runtime's next ``GET /next``; returns its request id (``request_id``, or a
        new UUID as Lambda makes them). ``client_context`` is the JSON the Runtime API hands out (the Invoke API's
        ``X-Amz-Client-Context``, base64-decoded)."""
        if isinstance(body, dict):
            body = json.dumps(body)
        event = body.encode() if isinstance(body, str) else bytes(body)
        timeout = self.function_timeout_s if timeout_s is None else timeout_s
        record = InvocationRecord(
            request_id=request_id or str(uuid.uuid4()),
            event=event,
            submitted_at=time.monotonic(),
            timeout_s=timeout,
            trace_id=trace_id or _new_trace_id(),
            client_context=client_context,
            cognito_identity=cognito_identity,
            tenant_id=tenant_id,
        )
        with self._cond:
            if self._closed:
                raise RuntimeError("the emulator is stopped")
            self._records[record.request_id] = record
            retry = self.on_init_retry if self._init_errors else None
            if retry is not None:  # a new init for this invocation, as on Lambda
                self._init_errors.clear()
            if self._init_errors:  # like Lambda after a failed init: the init error answers it
                record.init_error = self._init_errors[0]
            else:
                self._queue.append(record.request_id)
            self._cond.notify_all()
        if retry is not None:
            threading.Thread(target=retry, name="emulator-init-retry", daemon=True).start()
        logger.debug("submitted invocation {} ({} bytes)", record.request_id, len(record.event))
        return record.request_id

    def wait_outcome(self, request_id: str, timeout: float = 30.0) -> InvocationRecord:
        """Block until the runtime's first post for ``request_id`` (or an init error answering it)."""
        with self._cond:
            record = self._records[request_id]
            if not self._cond.wait_for(lambda: record.outcome is not None, timeout):
                raise TimeoutError(
                    f"no outcome for invocation {request_id} within {timeout} s: {record.describe()}; "
                    f"GET /next was called {self._next_polls} time(s)"
                )
            return record

    def invoke(
        self,
        body: bytes | str | dict[str, Any] = b"",
        *,
        timeout_s: float | None = None,
        trace_id: str | None = None,
        client_context: str | None = None,
        cognito_identity: str | None = None,
        tenant_id: str | None = None,
        wait: float = 30.0,
    ) -> InvocationRecord:
        request_id = self.submit(
            body,
            timeout_s=timeout_s,
            trace_id=trace_id,
            client_context=client_context,
            cognito_identity=cognito_identity,
            tenant_id=tenant_id,
        )
        return self.wait_outcome(request_id, wait)

    # ------------------------------------------------------------------------------------------------- reading

    def record(self, request_id: str) -> InvocationRecord:
        with self._cond:
            return self._records[request_id]

    def records(self) -> list[InvocationRecord]:
        with self._cond:
            return list(self._records.values())

    def discard(self, request_id: str) -> InvocationRecord:
        """Forget an answered invocation (its event, its posts) and return its record: a long run that never looks
        back, as the bench's, would otherwise keep every payload it sent and received (a 1 MiB run: gigabytes). A
        later post for it is answered as one for an unknown request id. ValueError if it has no outcome yet."""
        with self._cond:
            record = self._records[request_id]
            if record.outcome is None:
                raise ValueError(f"invocation {request_id} has no outcome yet")
            del self._records[request_id]
            return record

    @property
    def init_errors(self) -> list[PostedError]:
        with self._cond:
            return list(self._init_errors)

    def wait_init_error(self, timeout: float = 30.0) -> PostedError:
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._init_errors), timeout):
                raise TimeoutError(f"no init error was posted within {timeout} s")
            return self._init_errors[0]

    @property
    def init_failures(self) -> int:
        """How many init errors were posted over the emulator's life (a retried init clears ``init_errors``)."""
        with self._cond:
            return self._init_failures

    @property
    def last_init_error(self) -> PostedError | None:
        """The latest init error posted (kept when a retried init clears ``init_errors``)."""
        with self._cond:
            return self._last_init_error

    @property
    def next_poll_count(self) -> int:
        with self._cond:
            return self._next_polls

    @property
    def polls_waiting(self) -> int:
        """How many ``GET /next`` requests are waiting for an invocation right now: a runtime's idle slots."""
        with self._cond:
            return self._polls_waiting

    def wait_polls_waiting(self, count: int, timeout: float = 30.0) -> None:
        """Block until at least ``count`` ``GET /next`` requests wait at once (a runtime with that many idle slots)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._polls_waiting >= count, timeout):
                raise TimeoutError(f"{self._polls_waiting} GET /next request(s) waiting after {timeout} s, not {count}")

    def wait_next_polled(self, count: int = 1, timeout: float = 30.0) -> None:
        """Block until ``GET /next`` has been called at least ``count`` times in all."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._next_polls >= count, timeout):
                raise TimeoutError(f"GET /next was called {self._next_polls} time(s) within {timeout} s, not {count}")

    # ------------------------------------------------------------------------------------- runtime-side requests

    def _before_runtime_request(self, method: str, path: str, headers: Message[str, str]) -> Reply | None:
        """Fault-injection hook, called before every runtime-side request is handled.

        Return a :class:`Reply` to send it instead of the normal handling; None handles normally. This one applies
        the faults armed with :meth:`inject` (the first armed one that matches).
        """
        with self._cond:
            injection = next((each for each in self._injections if each.take(method, path)), None)
            if injection is not None and injection.exhausted:
                self._injections.remove(injection)
                self._fired_cleared += injection.fired
        if injection is None:
            return None
        fault = injection.fault
        logger.debug("injecting {} into {} {}", fault, method, path)
        if isinstance(fault, Status):
            return _error_reply(HTTPStatus(fault.code), "Emulator.InjectedFault", f"injected status {fault.code}")
        if isinstance(fault, Reset):
            return Reply(HTTPStatus.OK, reset=True)
        if isinstance(fault, LostAnswer):
            return Reply(HTTPStatus.OK, lose_answer=True)
        assert isinstance(fault, Delay)
        with self._cond:
            generation = self._generation
            self._cond.wait_for(lambda: self._closed or self._generation != generation, fault.seconds)
            if self._generation != generation:  # restarted meanwhile: this connection is gone, drop the request
                return Reply(HTTPStatus.SERVICE_UNAVAILABLE, reset=True)
        return None

    def _runtime_request(
        self, method: str, path: str, headers: Message[str, str], body: bytes, alive: Callable[[], bool]
    ) -> Reply | None:
        if method == "GET" and path == _NEXT_PATH:
            return self._next_invocation(alive)
        if method == "POST" and path == _INIT_ERROR_PATH:
            return self._post_init_error(PostedError.parse(body, headers.get("Lambda-Runtime-Function-Error-Type")))
        match = _POST_PATH.match(path) if method == "POST" else None
        if match is None:
            return _error_reply(HTTPStatus.NOT_FOUND, "NotFound", f"no runtime API route for {method} {path}")
        request_id, kind = unquote(match[1]), match[2]
        error_type = headers.get("Lambda-Runtime-Function-Error-Type")
        posted = body if kind == "response" else PostedError.parse(body, error_type)
        with self._cond:
            record = self._records.get(request_id)
            if record is None or not record.handed_out:
                why = "unknown request id" if record is None else "request id not handed out by /next yet"
                return _error_reply(HTTPStatus.BAD_REQUEST, "InvalidRequestID", f"{why}: {request_id}")
            post: Post = ("response", posted) if isinstance(posted, bytes) else ("error", posted)
            already = expired = False
            late = record.timed_out is not None or (
                not record.posts and record.deadline_ms is not None and time.time() * 1000 >= record.deadline_ms)
            if late:
                record.late_posts.append(post)
                expired = self._expire_locked(record)
            elif kind == "response" and record.outcome is None and len(body) > MAX_RESPONSE_BYTES:
                return self._refuse_oversized_locked(record, len(body))
            else:
                already = record.outcome is not None
                if not record.posts:
                    record.answered_at = time.time()
                record.posts.append(post)
                record.post_headers.append({name.lower(): value for name, value in headers.items()})
                self._cancel_deadline_locked(request_id)
            self._cond.notify_all()
        if late:
            logger.debug("refused a {} post for {}: it came after the deadline", kind, request_id)
            if expired:
                self._reset_runtime(record)
            return _error_reply(HTTPStatus.BAD_REQUEST, "InvalidRequestID",
                                f"invocation {request_id} timed out at its deadline")
        logger.debug("runtime posted {} for {}{}", kind, request_id, " (duplicate)" if already else "")
        if already:  # as AWS's Runtime API does: the runtime is no longer in a state that may answer it
            return _error_reply(
                HTTPStatus.FORBIDDEN, "InvalidStateTransition", f"invocation {request_id} already has an outcome"
            )
        return _json_reply(HTTPStatus.ACCEPTED, {"status": "OK"})

    def _refuse_oversized_locked(self, record: InvocationRecord, size: int) -> Reply:
        """A response over the limit: 413 for the runtime, Function.ResponseSizeTooLarge for the caller, as AWS
        answers both (the invocation is over: a later post gets 403 InvalidStateTransition)."""
        caller_sees = {"errorMessage": f"Response payload size exceeded maximum allowed payload size "
                                       f"({MAX_RESPONSE_BYTES} bytes).",
                       "errorType": "Function.ResponseSizeTooLarge"}
        record.too_large = PostedError.parse(json.dumps(caller_sees).encode(), None)
        record.oversized_response = size
        record.answered_at = time.time()
        self._cancel_deadline_locked(record.request_id)
        self._cond.notify_all()
        logger.debug("refused a {}-byte response for {}: over {} bytes", size, record.request_id, MAX_RESPONSE_BYTES)
        return _error_reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "RequestEntityTooLarge",
                            f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).")

    # --------------------------------------------------------------------------------------------- deadlines

    def _start_deadline_locked(self, record: InvocationRecord) -> None:
        """The deadline counts from the hand-out, as on Lambda; a timer ends the invocation when it passes."""
        record.handed_out_at = handed_out = time.monotonic()
        record.deadline_ms = int((time.time() + record.timeout_s) * 1000)
        self._deadlines.arm_locked(record.request_id, handed_out + record.timeout_s)

    def _cancel_deadline_locked(self, request_id: str) -> None:
        self._deadlines.cancel_locked(request_id)

    def _expire_locked(self, record: InvocationRecord) -> bool:
        """Answer an unanswered invocation with a timeout, as AWS does; True if this call did it."""
        self._cancel_deadline_locked(record.request_id)
        if record.outcome is not None:
            return False
        message = f"RequestId: {record.request_id} Error: Task timed out after {record.timeout_s:.2f} seconds"
        record.timed_out = PostedError.parse(
            json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": message}).encode(), None)
        if self.on_timeout is not None:  # from now until the reset is done (_reset_runtime), as one step
            self._resets[record.request_id] = self.on_timeout
        self._cond.notify_all()
        return True

    def _deadline_passed(self, request_id: str) -> None:
        with self._cond:
            record = self._records.get(request_id)
            expired = record is not None and not self._closed and self._expire_locked(record)
        if record is None:  # answered and discarded as its deadline passed
            return
        if expired:
            self._reset_runtime(record)

    def _reset_runtime(self, record: InvocationRecord) -> None:
        """Lambda resets the execution environment after a timeout: hand that to ``on_timeout``, off this thread."""
        logger.debug("invocation {} timed out at its deadline; resetting the runtime", record.request_id)
        with self._cond:
            hook = self._resets.get(record.request_id)  # the one held when it expired
        if hook is not None:
            threading.Thread(target=self._run_reset, args=(hook, record), name="emulator-reset", daemon=True).start()

    def _run_reset(self, hook: Callable[[InvocationRecord], None], record: InvocationRecord) -> None:
        """The reset, then hand-outs again: a poll of the runtime that timed out, made before it was killed, would
        otherwise take the next invocation with it."""
        try:
            hook(record)
        finally:
            with self._cond:
                del self._resets[record.request_id]
                self._cond.notify_all()

    def _next_invocation(self, alive: Callable[[], bool]) -> Reply | None:
        with self._cond:
            self._next_polls += 1
            self._cond.notify_all()
            generation = self._generation
            self._polls_waiting += 1
            try:
                while True:
                    if self._closed:
                        return _stopped_reply({"Connection": "close"})
                    if not alive() or self._generation != generation:
                        logger.debug("a runtime left GET /next before it got an invocation")
                        return None
                    if self._queue and not self._resets:
                        record = self._records[self._queue.popleft()]
                        record.handed_out = True
                        self._start_deadline_locked(record)
                        self._last_hand_out = record.handed_out_at or 0.0
                        break
                    self._cond.wait(_ALIVE_CHECK_S)
            finally:
                self._polls_waiting -= 1
                self._cond.notify_all()
        logger.debug("handing out invocation {}", record.request_id)
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": record.request_id,
            "Lambda-Runtime-Deadline-Ms": str(record.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": _FUNCTION_ARN + self.function_name,
            "Lambda-Runtime-Trace-Id": record.trace_id,
        }
        if record.client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = record.client_context
        if record.cognito_identity is not None:
            headers["Lambda-Runtime-Cognito-Identity"] = record.cognito_identity
        if record.tenant_id is not None:
            headers["Lambda-Runtime-Aws-Tenant-Id"] = record.tenant_id
        return Reply(HTTPStatus.OK, record.event, headers, handed_out_id=record.request_id)

    def _requeue(self, request_id: str) -> None:
        """Put back an invocation whose /next reply could not be delivered, for the next poller."""
        with self._cond:
            record = self._records[request_id]
            if record.outcome is None and not self._closed:
                self._cancel_deadline_locked(request_id)
                record.handed_out = False
                record.deadline_ms = record.handed_out_at = None
                self._queue.appendleft(request_id)
                self._cond.notify_all()
        logger.debug("requeued invocation {}: its /next reply could not be sent", request_id)

    def _post_init_error(self, error: PostedError) -> Reply:
        with self._cond:
            self._init_errors.append(error)
            self._init_failures += 1
            self._last_init_error = error
            for record in self._records.values():
                if record.outcome is None and record.init_error is None:
                    record.init_error = self._init_errors[0]
            self._queue.clear()
            self._cond.notify_all()
        logger.debug("runtime posted an init error: {}", error.describe())
        return _json_reply(HTTPStatus.ACCEPTED, {"status": "OK"})

    # ------------------------------------------------------------------------------------------ invoke endpoint

    def _invoke_request(self, headers: Message[str, str], body: bytes) -> Reply:
        try:
            client_context = _decode_client_context(headers.get("X-Amz-Client-Context"))
        except (ValueError, RecursionError):
            return _error_reply(HTTPStatus.BAD_REQUEST, "InvalidRequestContentException",
                                "Client context must be a valid Base64-encoded JSON object.")
        try:
            request_id = self.submit(body, trace_id=headers.get("X-Amzn-Trace-Id"), client_context=client_context,
                                     tenant_id=headers.get("X-Amz-Tenant-Id"))
        except RuntimeError:  # stopped
            return _stopped_reply({})
        id_header = {"X-Amzn-RequestId": request_id}
        with self._cond:
            record = self._records[request_id]
            while (outcome := record.outcome) is None and not self._closed:
                remaining = self._clock_start_locked(record) + record.timeout_s + self.no_response_grace_s \
                    - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        if outcome is None:
            if self._closed:
                return _stopped_reply(id_header)
            message = f"the runtime posted no outcome for {request_id} by its deadline + {self.no_response_grace_s} s"
            return _error_reply(HTTPStatus.GATEWAY_TIMEOUT, "Emulator.NoResponse", message, id_header)
        posted = outcome[1]
        status = HTTPStatus.OK
        if isinstance(posted, PostedError):
            id_header["X-Amz-Function-Error"] = "Unhandled"  # as the Invoke API marks it (AWS's emulator does not)
            if posted is record.init_error:
                status = HTTPStatus.BAD_GATEWAY  # as AWS's emulator answers an invocation that init failed
            posted = posted.body
        return Reply(status, posted, {"Content-Type": "application/json", **id_header})

    def _clock_start_locked(self, record: InvocationRecord) -> float:
        """When the caller's wait for ``record`` starts counting: its hand-out; while it is queued, its submit or
        the latest hand-out of any invocation, whichever is later (busy slots that keep taking invocations are not
        a runtime that is gone)."""
        if record.handed_out_at is not None:
            return record.handed_out_at
        return max(record.submitted_at, self._last_hand_out)


def _decode_client_context(header: str | None) -> str | None:
    """The Invoke API's ``X-Amz-Client-Context`` (base64 of a JSON object, as the SDKs send it) as the JSON text
    the Runtime API hands out; ValueError if it is not that."""
    if header is None:
        return None
    text = base64.b64decode(header, validate=True).decode("utf-8")
    if not isinstance(json.loads(text), dict):
        raise ValueError("the client context is not a JSON object")
    return text


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[_Handler], emulator: RuntimeApiEmulator) -> None:
        self.emulator = emulator
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._connections: set[socket.socket] = set()
        self._busy = 0  # requests being handled
        self._connections_cond = threading.Condition()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve our host's FQDN (a DNS look-up); the name is not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def track(self, sock: socket.socket, add: bool) -> None:
        with self._connections_cond:
            (self._connections.add if add else self._connections.discard)(sock)

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        with self._connections_cond:
            self._busy += 1
        try:
            yield
        finally:
            with self._connections_cond:
                self._busy -= 1
                self._connections_cond.notify_all()

    def drop_connections(self) -> None:
        """End every connection at once, replies in hand or not: the emulator went away."""
        with self._connections_cond:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close_connections(self) -> None:
        """Let the requests in hand send their replies, then end the connections idling between requests."""
        with self._connections_cond:
            self._connections_cond.wait_for(lambda: self._busy == 0, _STOP_DRAIN_S)
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.opt(exception=True).debug("emulator connection from {} failed", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm holds the body back until
        # the client's delayed ACK (~40 ms on Linux), on every request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.track(self.connection, add=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("emulator {}: {}", self.address_string(), format % args)

    def _dispatch(self) -> None:
        with self.server.handling():
            self._handle(self.server.emulator, self.command)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def _handle(self, emulator: RuntimeApiEmulator, method: str) -> None:
        path = urlsplit(self.path).path
        # A runtime's posts state their length; an invocation may have no body at all (curl -X POST), as with AWS.
        body = self._read_body(required=method == "POST" and path.startswith(_RUNTIME_PREFIX))
        if body is None:
            return
        reply: Reply | None
        if path.startswith(_RUNTIME_PREFIX):
            reply = emulator._before_runtime_request(method, path, self.headers)
            if reply is None or reply.lose_answer:
                handled = emulator._runtime_request(method, path, self.headers, body, self._client_connected)
                reply = handled if reply is None else Reply(HTTPStatus.OK, reset=True)
        elif method == "POST" and _INVOKE_PATH.match(path):
            reply = emulator._invoke_request(self.headers, body)
        else:
            reply = _error_reply(HTTPStatus.NOT_FOUND, "NotFound", f"no route for {method} {path}")
        if reply is None:  # the client went away
            self.close_connection = True
            return
        if reply.reset:
            self._reset_connection()
            return
        try:
            self._send(reply)
        except OSError:
            self.close_connection = True
            if reply.handed_out_id is not None:
                emulator._requeue(reply.handed_out_id)

    def _read_body(self, *, required: bool) -> bytes | None:
        """The request body, read fully by Content-Length; None once an error reply has been sent instead."""
        length_header = self.headers.get("Content-Length")
        if length_header is None and "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        if length_header is None and not required:
            return b""
        try:
            length = int(length_header) if length_header is not None else -1
        except ValueError:
            length = -1
        if length_header is None:
            failure = HTTPStatus.LENGTH_REQUIRED, "LengthRequired", "Content-Length is required"
        elif length < 0:
            failure = HTTPStatus.BAD_REQUEST, "InvalidContentLength", f"bad Content-Length {length_header!r}"
        elif length > MAX_BODY_BYTES:
            failure = HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "RequestTooLarge", f"body over {MAX_BODY_BYTES} bytes"
        else:
            body = self.rfile.read(length)
            if len(body) == length:
                return body
            self.close_connection = True  # the client hung up mid-body
            return None
        # The body is left unread, so this connection cannot carry another request.
        self._send(_error_reply(*failure, {"Connection": "close"}))
        return None

    def _read_chunked(self) -> bytes | None:
        """A chunked request body (as a client streaming its body sends it), at most MAX_BODY_BYTES; None once an
        error reply has been sent or the client hung up."""
        body = bytearray()
        try:
            while True:
                size = int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"x", 16)
                if size < 0 or len(body) + size > MAX_BODY_BYTES:
                    break
                if size == 0:  # the last chunk: then trailers, if any, and an empty line
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(body)
                chunk = self.rfile.read(size + 2)  # the chunk and its CRLF
                if len(chunk) != size + 2:
                    self.close_connection = True
                    return None
                body += chunk[:size]
        except ValueError:
            pass
        self._send(_error_reply(HTTPStatus.BAD_REQUEST, "InvalidChunkedBody", "a malformed or oversized chunked body",
                                {"Connection": "close"}))
        self.close_connection = True
        return None

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def _reset_connection(self) -> None:
        """Abort the connection: with a zero linger time, closing it sends a TCP RST rather than a FIN."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # the kernel closes it once our file objects on it are closed, in finish()

    def _client_connected(self) -> bool:
        """False once the client has closed its end (say, a runtime that was killed during its long poll)."""
        try:
            peeked: bytes = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return peeked != b""
        except BlockingIOError:
            return True  # nothing to read: still connected
        except OSError:
            return False
