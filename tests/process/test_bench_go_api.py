"""The bench's Runtime API on Go's net/http (bench/go_api.py), where Go is installed: it serves the supervisor with
``next`` pipelined into each post, answers a post and a ``next`` sent in one write in order, and fails a run in
which ``next`` came while an event was unanswered (the order Lambda's Runtime API enforces)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bare_http import Messages
from bench.go_api import GoRuntimeApi, go_available
from bench.runtimes import Supervisor
from bench.scenarios import running

pytestmark = pytest.mark.skipif(not go_available(), reason="Go is not installed (apt-get install golang-go)")

NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
def api() -> Iterator[GoRuntimeApi]:
    with GoRuntimeApi() as running_api:
        yield running_api


def _post(request_id: bytes) -> bytes:
    return (b"POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
            % request_id)


def _in_background(api: GoRuntimeApi, count: int) -> tuple[threading.Thread, list[BaseException | float]]:
    outcome: list[BaseException | float] = []

    def run() -> None:
        try:
            outcome.append(api.run(count, timeout_s=30))
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@contextmanager
def _handed_the_first_event(api: GoRuntimeApi, count: int) -> Iterator[
        tuple[socket.socket, Messages, dict[bytes, bytes], list[BaseException | float]]]:
    """A bare-socket runtime handed the first of a run of ``count`` events (the run goes on in a thread): its
    socket, its reader, the event's headers, and the run's outcome (filled once the block has ended)."""
    host, _, port = api.address.rpartition(":")
    thread, outcome = _in_background(api, count)
    with socket.create_connection((host, int(port))) as sock:
        reader = Messages(sock)
        sock.sendall(NEXT)
        status, headers, _ = reader.next()
        assert status.startswith(b"HTTP/1.1 200")
        yield sock, reader, headers, outcome
    thread.join(30)


def test_the_supervisor_is_served_and_timed(api: GoRuntimeApi) -> None:
    with running(Supervisor(api, "bench_app.noop")):
        assert api.run(200) > 0  # run() raises if any next came early or any post was unexpected


def test_a_post_and_a_next_in_one_write_are_answered_in_order(api: GoRuntimeApi) -> None:
    with _handed_the_first_event(api, 2) as (sock, reader, headers, outcome):
        sock.sendall(_post(headers[b"lambda-runtime-aws-request-id"]) + NEXT)
        assert reader.next()[0].startswith(b"HTTP/1.1 202")
        status, second, _ = reader.next()
        assert status.startswith(b"HTTP/1.1 200")
        assert second[b"lambda-runtime-aws-request-id"] != headers[b"lambda-runtime-aws-request-id"]
        sock.sendall(_post(second[b"lambda-runtime-aws-request-id"]))
        assert reader.next()[0].startswith(b"HTTP/1.1 202")
    assert len(outcome) == 1 and isinstance(outcome[0], float), outcome


def test_a_next_while_an_event_is_unanswered_fails_the_run(api: GoRuntimeApi) -> None:
    with _handed_the_first_event(api, 1) as (sock, reader, headers, outcome):
        sock.sendall(NEXT)  # before the post: out of order
        assert reader.next()[0].startswith(b"HTTP/1.1 403")
        sock.sendall(_post(headers[b"lambda-runtime-aws-request-id"]))
        assert reader.next()[0].startswith(b"HTTP/1.1 202")
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError), outcome
    assert "was unanswered" in str(outcome[0])
