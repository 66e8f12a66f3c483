"""The bench's Runtime API on Go's net/http (bench/go_api.py), where Go is installed: it serves the supervisor with
``next`` pipelined into each post, answers a post and a ``next`` sent in one write in order, and fails a run in
which ``next`` came while an event was unanswered (the order Lambda's Runtime API enforces)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

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


class _Reader:
    """Responses read one after the other from a socket, bytes of the next one kept."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""

    def response(self) -> tuple[bytes, dict[bytes, bytes], bytes]:
        while b"\r\n\r\n" not in self.data:
            self.data += self.sock.recv(65536)
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        status, *lines = head.split(b"\r\n")
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines)}
        length = int(headers[b"content-length"])
        while len(self.data) < length:
            self.data += self.sock.recv(65536)
        body, self.data = self.data[:length], self.data[length:]
        return status, headers, body


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
        tuple[socket.socket, _Reader, dict[bytes, bytes], list[BaseException | float]]]:
    """A bare-socket runtime handed the first of a run of ``count`` events (the run goes on in a thread): its
    socket, its reader, the event's headers, and the run's outcome (filled once the block has ended)."""
    host, _, port = api.address.rpartition(":")
    thread, outcome = _in_background(api, count)
    with socket.create_connection((host, int(port))) as sock:
        reader = _Reader(sock)
        sock.sendall(NEXT)
        status, headers, _ = reader.response()
        assert status.startswith(b"HTTP/1.1 200")
        yield sock, reader, headers, outcome
    thread.join(30)


def test_the_supervisor_is_served_and_timed(api: GoRuntimeApi) -> None:
    with running(Supervisor(api, "bench_app.noop")):
        assert api.run(200) > 0  # run() raises if any next came early or any post was unexpected


def test_a_post_and_a_next_in_one_write_are_answered_in_order(api: GoRuntimeApi) -> None:
    with _handed_the_first_event(api, 2) as (sock, reader, headers, outcome):
        sock.sendall(_post(headers[b"lambda-runtime-aws-request-id"]) + NEXT)
        assert reader.response()[0].startswith(b"HTTP/1.1 202")
        status, second, _ = reader.response()
        assert status.startswith(b"HTTP/1.1 200")
        assert second[b"lambda-runtime-aws-request-id"] != headers[b"lambda-runtime-aws-request-id"]
        sock.sendall(_post(second[b"lambda-runtime-aws-request-id"]))
        assert reader.response()[0].startswith(b"HTTP/1.1 202")
    assert len(outcome) == 1 and isinstance(outcome[0], float), outcome


def test_a_next_while_an_event_is_unanswered_fails_the_run(api: GoRuntimeApi) -> None:
    with _handed_the_first_event(api, 1) as (sock, reader, headers, outcome):
        sock.sendall(NEXT)  # before the post: out of order
        assert reader.response()[0].startswith(b"HTTP/1.1 403")
        sock.sendall(_post(headers[b"lambda-runtime-aws-request-id"]))
        assert reader.response()[0].startswith(b"HTTP/1.1 202")
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError), outcome
    assert "was unanswered" in str(outcome[0])
