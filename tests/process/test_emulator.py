"""The Runtime API emulator, driven over real loopback HTTP by a fake runtime running in threads."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from conftest import INIT_ERRORS_ROOT, StartRuntime
from lambda_supervisor.local.emulator.server import MAX_BODY_BYTES, MAX_RESPONSE_BYTES, RuntimeApiEmulator

TRACE_ID = re.compile(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$")


class FakeRuntime:
    """What a custom runtime does, with one keep-alive session (no proxies from the environment)."""

    def __init__(self, emulator: RuntimeApiEmulator) -> None:
        self.base = f"http://{emulator.address}/2018-06-01/runtime"
        self.session = requests.Session()
        self.session.trust_env = False

    def next(self) -> requests.Response:
        return self.session.get(f"{self.base}/invocation/next", timeout=10)

    def respond(self, request_id: str, body: bytes) -> requests.Response:
        return self.session.post(f"{self.base}/invocation/{request_id}/response", data=body, timeout=10)

    def fail(self, request_id: str, error: dict[str, Any], error_type: str = "Runtime.Handler") -> requests.Response:
        headers = {"Lambda-Runtime-Function-Error-Type": error_type}
        url = f"{self.base}/invocation/{request_id}/error"
        return self.session.post(url, data=json.dumps(error), headers=headers, timeout=10)

    def init_error(self, error: dict[str, Any]) -> requests.Response:
        headers = {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"}
        return self.session.post(f"{self.base}/init/error", data=json.dumps(error), headers=headers, timeout=10)


@pytest.fixture
def emulator() -> Iterator[RuntimeApiEmulator]:
    with RuntimeApiEmulator(function_timeout_s=3.0, no_response_grace_s=0.5) as emu:
        yield emu


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


def http_post(url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False
        return session.post(url, data=body, headers=headers, timeout=10)


def serve_one(runtime: FakeRuntime, answer: Callable[[requests.Response], requests.Response]) -> requests.Response:
    """One runtime turn: take the next invocation and answer it; returns the /next response."""
    nxt = runtime.next()
    assert nxt.status_code == 200
    reply = answer(nxt)
    assert reply.status_code == 202, reply.text
    return nxt


def test_next_then_response(emulator: RuntimeApiEmulator, pool: ThreadPoolExecutor) -> None:
    runtime = FakeRuntime(emulator)
    turn = pool.submit(
        serve_one, runtime, lambda n: runtime.respond(n.headers["Lambda-Runtime-Aws-Request-Id"], b"[1]")
    )
    request_id = emulator.submit({"hello": "world"})
    record = emulator.wait_outcome(request_id, timeout=5)
    nxt = turn.result(timeout=5)
    assert nxt.content == b'{"hello": "world"}'
    assert nxt.headers["Lambda-Runtime-Aws-Request-Id"] == request_id
    assert (
        nxt.headers["Lambda-Runtime-Invoked-Function-Arn"] == "arn:aws:lambda:us-east-1:012345678912:function:function"
    )
    assert TRACE_ID.match(nxt.headers["Lambda-Runtime-Trace-Id"])
    assert "Lambda-Runtime-Client-Context" not in nxt.headers
    assert "Lambda-Runtime-Cognito-Identity" not in nxt.headers
    assert record.handed_out and record.outcome_kind == "response"
    assert record.posts == [("response", b"[1]")] and record.json() == [1]
    assert emulator.records() == [record] and emulator.record(request_id) is record
    with pytest.raises(AssertionError, match="expected an error"):
        _ = record.error


def test_next_then_error_records_body_and_header(emulator: RuntimeApiEmulator, pool: ThreadPoolExecutor) -> None:
    runtime = FakeRuntime(emulator)
    error = {"errorType": "ValueError", "errorMessage": "bad input", "stackTrace": []}
    pool.submit(serve_one, runtime, lambda n: runtime.fail(n.headers["Lambda-Runtime-Aws-Request-Id"], error))
    record = emulator.invoke("not json at all", wait=5)
    assert record.event == b"not json at all"
    assert record.outcome_kind == "error"
    assert record.error.error == error and record.error.body == json.dumps(error).encode()
    assert record.error.error_type == "ValueError" and record.error.error_message == "bad input"
    assert record.error.error_type_header == "Runtime.Handler"
    with pytest.raises(AssertionError, match="ValueError"):
        _ = record.response


def test_init_error_answers_waiting_and_later_invocations(emulator: RuntimeApiEmulator) -> None:
    waiting = emulator.submit(b"{}")
    error = {"errorType": "Runtime.ImportModuleError", "errorMessage": "No module named 'app'"}
    assert FakeRuntime(emulator).init_error(error).status_code == 202
    assert emulator.wait_init_error(timeout=5).error == error
    assert emulator.wait_outcome(waiting, timeout=5).error.error_type == "Runtime.ImportModuleError"
    later = http_post(emulator.invoke_url, b"{}")
    assert later.status_code == 502  # as AWS's emulator answers an invocation whose init failed
    assert later.headers["X-Amz-Function-Error"] == "Unhandled"
    assert later.json() == error
    assert [e.error_type_header for e in emulator.init_errors] == ["Runtime.ImportModuleError"]
    assert all(r.posts == [] and not r.handed_out for r in emulator.records())  # the runtime posted nothing for them
    assert [r.request_id for r in emulator.records()] == [waiting, later.headers["X-Amzn-RequestId"]]


def test_duplicate_post_is_recorded_and_rejected(emulator: RuntimeApiEmulator, pool: ThreadPoolExecutor) -> None:
    runtime = FakeRuntime(emulator)
    turn = pool.submit(serve_one, runtime, lambda n: runtime.respond(n.headers["Lambda-Runtime-Aws-Request-Id"], b"1"))
    request_id = emulator.submit()
    turn.result(timeout=5)
    second = runtime.fail(request_id, {"errorType": "Late"})
    third = runtime.respond(request_id, b"2")
    assert second.status_code == third.status_code == 403  # as AWS's emulator answers a second post
    assert second.json()["errorType"] == third.json()["errorType"] == "InvalidStateTransition"
    record = emulator.record(request_id)
    assert [kind for kind, _ in record.posts] == ["response", "error", "response"]
    assert record.outcome_kind == "response" and record.response == b"1"


def test_an_answered_invocation_can_be_discarded_and_is_then_unknown(emulator: RuntimeApiEmulator,
                                                                      pool: ThreadPoolExecutor) -> None:
    runtime = FakeRuntime(emulator)
    waiting = emulator.submit({"n": 1})
    with pytest.raises(ValueError, match="no outcome yet"):  # not answered: kept
        emulator.discard(waiting)
    turn = pool.submit(serve_one, runtime, lambda n: runtime.respond(n.headers["Lambda-Runtime-Aws-Request-Id"], b"1"))
    turn.result(timeout=5)
    record = emulator.discard(waiting)
    assert record.request_id == waiting and record.response == b"1"
    assert emulator.records() == []
    late = runtime.respond(waiting, b"2")
    assert late.status_code == 400 and late.json()["errorType"] == "InvalidRequestID"
    with pytest.raises(KeyError):
        emulator.discard(waiting)


def test_unknown_ids_paths_and_bad_bodies(emulator: RuntimeApiEmulator) -> None:
    runtime = FakeRuntime(emulator)
    unknown = runtime.respond("no-such-id", b"x")
    assert unknown.status_code == 400 and unknown.json()["errorType"] == "InvalidRequestID"
    not_handed_out = runtime.respond(emulator.submit(), b"x")
    assert not_handed_out.status_code == 400 and not_handed_out.json()["errorType"] == "InvalidRequestID"
    assert all(r.posts == [] for r in emulator.records())
    for method, path in [("GET", "/nope"), ("POST", "/2018-06-01/runtime/invocation/next"), ("PUT", "/x")]:
        reply = runtime.session.request(method, f"http://{emulator.address}{path}", data=b"", timeout=10)
        assert reply.status_code == 404 and reply.json()["errorType"] == "NotFound"

    host, port = emulator.address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("POST", "/2018-06-01/runtime/invocation/no-such-id/response")
    conn.endheaders()  # no Content-Length: a runtime's post must say how long it is (an invocation need not)
    assert conn.getresponse().status == 411
    conn.close()
    conn.putrequest("POST", "/2015-03-31/functions/function/invocations")
    conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    conn.endheaders()
    too_large = conn.getresponse()
    assert too_large.status == 413 and too_large.getheader("Connection") == "close"
    conn.close()


def test_keep_alive_and_large_bodies(emulator: RuntimeApiEmulator, pool: ThreadPoolExecutor) -> None:
    big = bytes(range(256)) * (8 * 1024 * 1024 // 256)  # 8 MiB
    host, port = emulator.address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def runtime_turn() -> bytes:
        conn.request("GET", "/2018-06-01/runtime/invocation/next")
        nxt = conn.getresponse()
        event, request_id = nxt.read(), nxt.getheader("Lambda-Runtime-Aws-Request-Id")
        first_socket = conn.sock
        conn.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response",
                     body=event[::-1][:MAX_RESPONSE_BYTES])  # the largest response AWS takes
        posted = conn.getresponse()
        assert posted.status == 202 and json.loads(posted.read()) == {"status": "OK"}
        assert conn.sock is first_socket  # the same connection carried both requests
        return event

    turn = pool.submit(runtime_turn)
    record = emulator.invoke(big, wait=10)
    assert turn.result(timeout=10) == big
    assert record.response == big[::-1][:MAX_RESPONSE_BYTES]
    conn.close()


def test_invoke_endpoint(emulator: RuntimeApiEmulator, pool: ThreadPoolExecutor) -> None:
    runtime = FakeRuntime(emulator)

    def two_turns() -> list[str]:
        first = serve_one(runtime, lambda n: runtime.respond(n.headers["Lambda-Runtime-Aws-Request-Id"], n.content))
        second = serve_one(
            runtime, lambda n: runtime.fail(n.headers["Lambda-Runtime-Aws-Request-Id"], {"errorType": "Boom"})
        )
        return [first.headers["Lambda-Runtime-Aws-Request-Id"], second.headers["Lambda-Runtime-Aws-Request-Id"]]

    turns = pool.submit(two_turns)
    context_header = base64.b64encode(b'{"custom": {"k": "v"}}').decode()
    ok = http_post(emulator.invoke_url, b'{"n": 1}', {"X-Amz-Client-Context": context_header,
                                                      "X-Amzn-Trace-Id": "Root=1-a", "X-Amz-Tenant-Id": "t-1"})
    assert ok.status_code == 200 and ok.content == b'{"n": 1}'
    assert ok.headers["Content-Type"] == "application/json" and "X-Amz-Function-Error" not in ok.headers
    failed = http_post(emulator.invoke_url)
    assert failed.status_code == 200 and failed.json() == {"errorType": "Boom"}
    assert failed.headers["X-Amz-Function-Error"] == "Unhandled"
    assert turns.result(timeout=5) == [ok.headers["X-Amzn-RequestId"], failed.headers["X-Amzn-RequestId"]]
    first = emulator.record(ok.headers["X-Amzn-RequestId"])
    assert first.client_context == '{"custom": {"k": "v"}}' and first.trace_id == "Root=1-a"
    assert first.tenant_id == "t-1"
    assert emulator.record(failed.headers["X-Amzn-RequestId"]).event == b""


def test_no_runtime_is_504_and_a_post_in_time_after_it_is_still_recorded(pool: ThreadPoolExecutor) -> None:
    """Nobody took the invocation: the caller gives up; a runtime that takes it later still has its full timeout."""
    with RuntimeApiEmulator(function_timeout_s=1.0, no_response_grace_s=0.05) as emu:
        timed_out = http_post(emu.invoke_url, b"{}")
        assert timed_out.status_code == 504
        assert timed_out.json()["errorType"] == "Emulator.NoResponse"
        request_id = timed_out.headers["X-Amzn-RequestId"]
        assert emu.record(request_id).outcome_kind is None
        with pytest.raises(TimeoutError, match="nothing posted yet"):
            emu.wait_outcome(request_id, timeout=0.01)
        runtime = FakeRuntime(emu)
        serve_one(runtime, lambda n: runtime.respond(n.headers["Lambda-Runtime-Aws-Request-Id"], b"in time"))
        assert emu.wait_outcome(request_id, timeout=5).response == b"in time"


def test_stop_wakes_a_blocked_poller() -> None:
    emu = RuntimeApiEmulator().start()
    outcome: list[object] = []

    def poll() -> None:
        try:
            outcome.append(FakeRuntime(emu).next().status_code)
        except requests.ConnectionError as error:
            outcome.append(error)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    emu.wait_next_polled(1, timeout=5)
    assert emu.next_poll_count == 1
    emu.stop()
    emu.stop()  # idempotent
    poller.join(timeout=5)
    assert not poller.is_alive()
    assert outcome == [503] or isinstance(outcome[0], requests.ConnectionError)


def test_a_runtime_that_left_its_long_poll_does_not_take_an_invocation(
    emulator: RuntimeApiEmulator, pool: ThreadPoolExecutor
) -> None:
    host, port = emulator.address.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as gone:
        gone.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
        emulator.wait_next_polled(1, timeout=5)
    runtime = FakeRuntime(emulator)
    turn = pool.submit(serve_one, runtime, lambda n: runtime.respond(n.headers["Lambda-Runtime-Aws-Request-Id"], b"ok"))
    emulator.wait_next_polled(2, timeout=5)
    assert emulator.invoke(b"{}", wait=5).response == b"ok"
    turn.result(timeout=5)


def test_deadline_and_pass_through_headers(emulator: RuntimeApiEmulator, pool: ThreadPoolExecutor) -> None:
    runtime = FakeRuntime(emulator)
    request_id = emulator.submit(
        b"{}",
        timeout_s=2.0,
        trace_id="Root=1-5e1b4151-5ac6c58f5c8e4a8a9b1d2e3f",
        client_context='{"c":1}',
        cognito_identity='{"cognitoIdentityId":"id"}',
        tenant_id="tenant-1",
    )
    time.sleep(0.3)  # the deadline counts from the hand-out, not from the submission, as on Lambda
    before_ms = time.time() * 1000
    headers = serve_one(runtime, lambda n: runtime.respond(n.headers["Lambda-Runtime-Aws-Request-Id"], b"{}")).headers
    after_ms = time.time() * 1000
    deadline_ms = int(headers["Lambda-Runtime-Deadline-Ms"])
    assert before_ms + 2000 - 1 <= deadline_ms <= after_ms + 2000 + 1
    assert emulator.record(request_id).deadline_ms == deadline_ms
    assert headers["Lambda-Runtime-Trace-Id"] == "Root=1-5e1b4151-5ac6c58f5c8e4a8a9b1d2e3f"
    assert headers["Lambda-Runtime-Client-Context"] == '{"c":1}'
    assert headers["Lambda-Runtime-Cognito-Identity"] == '{"cognitoIdentityId":"id"}'
    assert headers["Lambda-Runtime-Aws-Tenant-Id"] == "tenant-1"


def test_the_headers_of_each_post_are_recorded(emulator: RuntimeApiEmulator, pool: ThreadPoolExecutor) -> None:
    runtime = FakeRuntime(emulator)

    def respond_raw(nxt: requests.Response) -> requests.Response:
        url = f"{runtime.base}/invocation/{nxt.headers['Lambda-Runtime-Aws-Request-Id']}/response"
        return runtime.session.post(url, data=b"\x00raw", headers={"Content-Type": "application/unknown"}, timeout=10)

    turn = pool.submit(serve_one, runtime, respond_raw)
    record = emulator.invoke(b"{}", wait=5)
    turn.result(timeout=5)
    assert record.response == b"\x00raw"
    assert record.content_type == "application/unknown"
    assert record.outcome_headers["content-type"] == "application/unknown"


@pytest.mark.parametrize("header", ["not base64!", base64.b64encode(b"not json").decode(),
                                    base64.b64encode(b"[1]").decode()])
def test_a_client_context_that_is_not_base64_json_is_refused(emulator: RuntimeApiEmulator, header: str) -> None:
    refused = http_post(emulator.invoke_url, b"{}", {"X-Amz-Client-Context": header})
    assert refused.status_code == 400
    assert refused.json()["errorType"] == "InvalidRequestContentException"
    assert emulator.records() == []


def test_a_post_after_the_deadline_is_refused_and_the_runtime_reset(pool: ThreadPoolExecutor) -> None:
    """Like Lambda: at the deadline the caller gets Sandbox.Timedout and the runtime is reset (the hook); the late
    post is refused with a 4xx and kept apart from the posts made in time."""
    resets: list[str] = []
    reset_done = threading.Event()

    def reset(record: Any) -> None:
        resets.append(record.request_id)
        reset_done.set()

    with RuntimeApiEmulator(function_timeout_s=0.3, no_response_grace_s=5, on_timeout=reset) as emu:
        runtime = FakeRuntime(emu)
        turn = pool.submit(runtime.next)
        answer = http_post(emu.invoke_url, b"{}")
        request_id = turn.result(timeout=5).headers["Lambda-Runtime-Aws-Request-Id"]
        assert answer.status_code == 200 and answer.headers["X-Amzn-RequestId"] == request_id
        assert answer.headers["X-Amz-Function-Error"] == "Unhandled"
        assert answer.json() == {"errorType": "Sandbox.Timedout",
                                 "errorMessage": f"RequestId: {request_id} Error: Task timed out after 0.30 seconds"}
        assert reset_done.wait(5) and resets == [request_id]
        late = runtime.respond(request_id, b"too late")
        assert late.status_code == 400 and late.json()["errorType"] == "InvalidRequestID"
        record = emu.record(request_id)
        assert record.posts == [] and record.late_posts == [("response", b"too late")]
        assert record.error.error_type == "Sandbox.Timedout"
        assert "refused late post" in record.describe()
        assert resets == [request_id], "one reset per timed-out invocation"


def test_no_invocation_is_handed_out_while_a_reset_is_under_way(pool: ThreadPoolExecutor) -> None:
    """The runtime being reset may poll again before it is killed (after posting its late answer, say): it must not
    take the next invocation, which it would take down with it. That invocation goes to the runtime polling once
    the reset is done, as Lambda gives it to the new environment."""
    in_reset, release = threading.Event(), threading.Event()

    def reset(_record: Any) -> None:
        in_reset.set()
        release.wait(10)

    with RuntimeApiEmulator(function_timeout_s=0.3, no_response_grace_s=5, on_timeout=reset) as emu:
        old = FakeRuntime(emu)
        pool.submit(old.next)
        assert http_post(emu.invoke_url, b"{}").json()["errorType"] == "Sandbox.Timedout"
        assert in_reset.wait(5)
        request_id = emu.submit(b"{}")
        stale = pool.submit(old.next)
        emu.wait_polls_waiting(1, timeout=5)  # the old runtime's poll is in, with an invocation queued
        assert not stale.done() and not emu.record(request_id).handed_out
        release.set()  # the reset is done; in this test the "old" runtime lives on, and now gets it
        handed = stale.result(timeout=5)
        assert handed.headers["Lambda-Runtime-Aws-Request-Id"] == request_id


def test_a_post_in_time_cancels_the_deadline(pool: ThreadPoolExecutor) -> None:
    resets: list[Any] = []
    with RuntimeApiEmulator(function_timeout_s=0.3, on_timeout=resets.append) as emu:
        runtime = FakeRuntime(emu)
        pool.submit(serve_one, runtime, lambda n: runtime.respond(n.headers["Lambda-Runtime-Aws-Request-Id"], b"1"))
        record = emu.invoke(b"{}", wait=5)
        time.sleep(0.5)  # past the deadline: nothing may happen to an answered invocation
        assert record.response == b"1" and record.timed_out is None and resets == []



def test_a_hand_out_starts_no_thread(emulator: RuntimeApiEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each deadline used to be a ``threading.Timer``: a thread started at every hand-out while the runtime waited
    for its event, half of a no-op cycle's cost. One keeper thread now watches every deadline."""
    runtime = FakeRuntime(emulator)

    def serve(count: int) -> None:
        for _ in range(count):
            turn = runtime.next()
            runtime.respond(turn.headers["Lambda-Runtime-Aws-Request-Id"], b"1")

    server = threading.Thread(target=serve, args=(21,), daemon=True)
    server.start()
    assert emulator.invoke(b"{}", wait=10).response == b"1"  # its connection, and that one's thread, are open
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    for _ in range(20):
        assert emulator.invoke(b"{}", wait=10).response == b"1"
    server.join(10)
    assert not server.is_alive() and started == []

# -- as AWS answers: oversized responses, invocations without a body, failed inits ---------------------------------

TOO_LARGE = {"errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
             "errorType": "Function.ResponseSizeTooLarge"}


def test_a_response_over_6_mib_and_100_bytes_is_refused_with_413(emulator: RuntimeApiEmulator,
                                                                  pool: ThreadPoolExecutor) -> None:
    """The limit is AWS's emulator's: 6 MiB + 100 bytes pass; one more byte is 413 RequestEntityTooLarge for the
    runtime, Function.ResponseSizeTooLarge for the caller, and the invocation is over (a retry gets 403)."""
    assert MAX_RESPONSE_BYTES == 6 * 1024 * 1024 + 100
    runtime = FakeRuntime(emulator)

    def two_turns() -> list[requests.Response]:
        first = runtime.next().headers["Lambda-Runtime-Aws-Request-Id"]
        at_limit = runtime.respond(first, b"x" * MAX_RESPONSE_BYTES)
        second = runtime.next().headers["Lambda-Runtime-Aws-Request-Id"]
        over = runtime.respond(second, b"x" * (MAX_RESPONSE_BYTES + 1))
        return [at_limit, over, runtime.respond(second, b"small"), runtime.fail(second, {"errorType": "Late"})]

    turns = pool.submit(two_turns)
    fits = http_post(emulator.invoke_url, b"{}")
    refused = http_post(emulator.invoke_url, b"{}")
    at_limit, over, retried, failed = turns.result(timeout=30)
    assert at_limit.status_code == 202 and len(fits.content) == MAX_RESPONSE_BYTES
    assert over.status_code == 413 and over.json() == {
        "errorType": "RequestEntityTooLarge", "errorMessage": "Exceeded maximum allowed payload size (6291556 bytes)."}
    assert refused.status_code == 200 and refused.headers["X-Amz-Function-Error"] == "Unhandled"
    assert refused.json() == TOO_LARGE
    assert retried.status_code == failed.status_code == 403
    record = emulator.record(refused.headers["X-Amzn-RequestId"])
    assert record.oversized_response == MAX_RESPONSE_BYTES + 1 and record.error.error == TOO_LARGE


def test_our_runtime_over_the_limit_gets_413_and_serves_on(start_runtime: StartRuntime) -> None:
    """With its own limit raised past Lambda's, the supervisor posts a 7 MiB result: the emulator refuses it as
    Lambda would, the caller sees Function.ResponseSizeTooLarge, and the instance keeps serving."""
    runtime = start_runtime("faults.big_result", env={"LAMBDA_SUPERVISOR_MAX_RESPONSE_BYTES": str(16 << 20)})
    refused = http_post(runtime.emulator.invoke_url, b"{}")
    assert refused.status_code == 200 and refused.headers["X-Amz-Function-Error"] == "Unhandled"
    assert refused.json() == TOO_LARGE
    runtime.emulator.wait_next_polled(2, timeout=60)
    assert runtime.alive() and "status=413" in runtime.log()
    assert http_post(runtime.emulator.invoke_url, b"{}").json() == TOO_LARGE, "the next invocation was served too"


def test_an_invocation_without_a_body_or_with_a_chunked_one_is_accepted(start_runtime: StartRuntime) -> None:
    """``curl -X POST`` sends no Content-Length at all; a streaming client sends its body in chunks."""
    runtime = start_runtime("faults.echo")
    connection = http.client.HTTPConnection("127.0.0.1", runtime.emulator.port, timeout=30)
    connection.putrequest("POST", "/2015-03-31/functions/function/invocations")
    connection.endheaders()
    bare = connection.getresponse()
    assert bare.status == 200 and json.loads(bare.read())["event"] == {}, "an empty event is the handler's {}"
    connection.request("POST", "/2015-03-31/functions/function/invocations", body=iter([b'{"a": ', b'[1, 2]}']),
                       encode_chunked=True)
    chunked = connection.getresponse()
    assert chunked.status == 200 and json.loads(chunked.read())["event"] == {"a": [1, 2]}
    connection.close()
    records = runtime.emulator.records()
    assert [record.event for record in records] == [b"", b'{"a": [1, 2]}']


def test_a_malformed_chunked_body_is_refused(emulator: RuntimeApiEmulator) -> None:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=10) as sock:
        sock.sendall(b"POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")
    assert emulator.records() == []


def test_an_invocation_after_a_failed_init_is_answered_502_with_the_init_error(start_runtime: StartRuntime) -> None:
    """As AWS's emulator answers it (the Invoke API would say 200): the status, then the runtime's error object."""
    runtime = start_runtime("import_raises.handler", task_root=INIT_ERRORS_ROOT, wait_ready=False)
    posted = runtime.emulator.wait_init_error(60)
    answer = http_post(runtime.emulator.invoke_url, b"{}")
    assert answer.status_code == 502 and answer.content == posted.body
    assert answer.headers["X-Amz-Function-Error"] == "Unhandled"
    assert answer.json()["errorType"] == posted.error_type
