"""The bench's lean Runtime API (bench/lean_api.py), driven by a bare-socket runtime: it hands out one fresh event
per ``next``, answers each post, and refuses to time a run in which a post was not the expected response."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from bare_http import Messages
from bench.lean_api import LeanRuntimeApi


@pytest.fixture
def api() -> Iterator[LeanRuntimeApi]:
    with LeanRuntimeApi() as running:
        yield running


def _serve(address: str, invocations: int, post: bytes = b"{}", kind: str = "response") -> list[bytes]:
    """A runtime: ``invocations`` times GET next, then POST ``post``; the request ids it was handed."""
    host, _, port = address.rpartition(":")
    ids = []
    with socket.create_connection((host, int(port))) as sock:
        responses = Messages(sock)
        for _ in range(invocations):
            sock.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = responses.next()
            assert status.startswith(b"HTTP/1.1 200") and body == b"{}"
            assert int(headers[b"lambda-runtime-deadline-ms"]) > 0 and headers[b"lambda-runtime-trace-id"]
            request_id = headers[b"lambda-runtime-aws-request-id"]
            ids.append(request_id)
            sock.sendall(b"POST /2018-06-01/runtime/invocation/%s/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                         b"\r\n%s" % (request_id, kind.encode(), len(post), post))
            status, _, _ = responses.next()
            assert status.startswith(b"HTTP/1.1 202")
    return ids


def test_each_next_is_handed_a_fresh_event_and_the_run_is_timed(api: LeanRuntimeApi) -> None:
    handed: list[bytes] = []
    runtime = threading.Thread(target=lambda: handed.extend(_serve(api.address, 5)))
    runtime.start()
    api.wait_next_polled(1)  # the first poll waits: nothing is handed out before run()
    assert api.run(5) > 0
    runtime.join(10)
    assert len(handed) == 5 and len(set(handed)) == 5
    assert api.next_poll_count == 5


@pytest.mark.parametrize(("post", "kind"), [(b'{"other": 1}', "response"), (b'{"errorType": "E"}', "error")],
                         ids=["another-body", "an-error"])
def test_a_post_that_is_not_the_expected_response_fails_the_run(api: LeanRuntimeApi, post: bytes,
                                                                kind: str) -> None:
    runtime = threading.Thread(target=_serve, args=(api.address, 2, post, kind))
    runtime.start()
    with pytest.raises(RuntimeError, match="unexpected"):
        api.run(2)
    runtime.join(10)


def test_a_run_whose_posts_stop_coming_times_out(api: LeanRuntimeApi) -> None:
    """No runtime polls: nothing is handed out, no post comes, and the bench is told so instead of waiting forever."""
    with pytest.raises(TimeoutError, match="no 'done' answer"):
        api.run(1, timeout_s=0.3)
