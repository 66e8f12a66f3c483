"""The Runtime API connection against a scripted HTTP server on loopback: keep-alive, framing, broken answers.

The server is a real socket server in a thread that answers each request with the next canned bytes of its
script and counts the connections it accepted, so a connection silently reopened per call is caught.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from conftest import wait_for
from lambda_supervisor.supervisor.http_connection import (
    COALESCE_BYTES,
    DIRECT_BODY_BYTES,
    HttpConnection,
    IncompleteResponse,
    ResponseParseError,
    UnsafeRequest,
)

OK = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}"


class Close(bytes):
    """A scripted answer after which the server hangs up."""


class Late(bytes):
    """A scripted answer sent only after ``LATE_S`` of silence."""


class Stall(bytes):
    """A scripted answer, cut short, after which the server says nothing more but keeps the connection open."""


LATE_S = 0.6
IO_TIMEOUT_S = 0.15


class ScriptedServer:
    """Answers request number n (over all connections) with ``script[n]``; ``None`` hangs up without answering,
    a :class:`Close` answer hangs up after it."""

    def __init__(self, script: list[bytes | None]) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                self._answer_all(conn)

    def _answer_all(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(buffer) < length:
                buffer += conn.recv(65536)
            self.requests.append(head + b"\r\n\r\n" + buffer[:length])
            buffer = buffer[length:]
            answer = self.script[len(self.requests) - 1]
            if answer is None:
                return
            if isinstance(answer, Late):
                time.sleep(LATE_S)
            conn.sendall(answer)
            if isinstance(answer, Stall):
                conn.recv(1)  # until the client gives up and closes
                return
            if isinstance(answer, Close):
                return

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def serve() -> Iterator[type[ScriptedServer]]:
    servers: list[ScriptedServer] = []

    class Tracked(ScriptedServer):
        def __init__(self, script: list[bytes | None]) -> None:
            super().__init__(script)
            servers.append(self)

    yield Tracked
    for server in servers:
        server.close()


def connect(server: ScriptedServer) -> HttpConnection:
    return HttpConnection("127.0.0.1", server.port, connect_timeout_s=3, io_timeout_s=5, user_agent="test-agent")


def test_many_calls_share_one_connection_and_bodies_arrive_whole(serve: type[ScriptedServer]) -> None:
    server = serve([OK] * 50)
    connection = connect(server)
    for n in range(50):
        response = connection.request("POST", f"/r/{n}", b"x" * n * 3000, {"X-Kind": "test"})
        assert (response.status, response.body, response.headers["content-type"]) == (
            202, b'{"status":"OK"}', "application/json")
    assert server.connections == 1
    last = server.requests[-1]
    assert last.startswith(b"POST /r/49 HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 147000\r\n" in last and b"\r\nX-Kind: test\r\n" in last
    assert b"\r\nUser-Agent: test-agent\r\n" in last and last.endswith(b"x" * 147000)


def test_a_chunked_answer_is_reassembled(serve: type[ScriptedServer]) -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nLambda-Runtime-Aws-Request-Id: abc\r\n\r\n"
               b"3\r\n{\"a\r\n5\r\n\": 1}\r\n0\r\n\r\n")
    connection = connect(server := serve([chunked, OK]))
    response = connection.request("GET", "/next", long_poll=True)
    assert (response.status, response.body, response.headers["lambda-runtime-aws-request-id"]) == (
        200, b'{"a": 1}', "abc")
    assert connection.request("GET", "/next", long_poll=True).status == 202
    assert server.connections == 1


def _large(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


def test_a_large_body_read_directly_arrives_whole_and_the_connection_goes_on(serve: type[ScriptedServer]) -> None:
    first, second = bytes(range(256)) * (DIRECT_BODY_BYTES // 64), b"\xff\x00" * (DIRECT_BODY_BYTES * 3)
    connection = connect(server := serve([_large(first), OK, _large(second), _large(first)]))
    response = connection.request("GET", "/next", long_poll=True, direct_body=True)
    assert (response.status, bytes(response.body)) == (200, first)
    assert connection.request("POST", "/r", b"{}").body == b'{"status":"OK"}'
    assert bytes(connection.request("GET", "/next", direct_body=True).body) == second
    undirected = connection.request("GET", "/next")  # without direct_body: a body of its own, as before
    assert isinstance(undirected.body, bytes) and undirected.body == first
    assert server.connections == 1


@pytest.mark.parametrize("cut", [100, DIRECT_BODY_BYTES * 2])
def test_a_large_body_cut_short_is_an_error_and_the_next_call_starts_clean(
    serve: type[ScriptedServer], cut: int
) -> None:
    body = b"e" * (DIRECT_BODY_BYTES * 4)
    connection = connect(server := serve([Close(_large(body)[:cut]), _large(body)]))
    with pytest.raises(IncompleteResponse):
        connection.request("GET", "/next", direct_body=True)
    assert bytes(connection.request("GET", "/next", direct_body=True).body) == body
    assert server.connections == 2


def test_a_large_chunked_body_is_reassembled_by_the_parser(serve: type[ScriptedServer]) -> None:
    body = b"c" * (DIRECT_BODY_BYTES * 2)
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    connection = connect(serve([chunked]))
    assert connection.request("GET", "/next", direct_body=True).body == body


def test_connection_close_is_honoured_and_the_next_call_reconnects(serve: type[ScriptedServer]) -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    connection = connect(server := serve([closing, OK]))
    assert connection.request("GET", "/next").body == b"{}"
    assert connection.request("GET", "/next").status == 202
    assert server.connections == 2


def test_an_answer_cut_short_is_an_error_and_the_next_call_starts_clean(serve: type[ScriptedServer]) -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a little"
    connection = connect(server := serve([Close(cut), None, OK]))
    with pytest.raises(IncompleteResponse):
        connection.request("GET", "/next")  # the server never sends the rest, then hangs up
    with pytest.raises(IncompleteResponse):
        connection.request("GET", "/next")  # closed with no answer at all
    assert connection.request("GET", "/next").status == 202
    assert server.connections == 3


def test_garbage_instead_of_http_is_a_parse_error(serve: type[ScriptedServer]) -> None:
    connection = connect(serve([b"SSH-2.0-OpenSSH_9.6\r\n\r\n", OK]))
    with pytest.raises(ResponseParseError):
        connection.request("GET", "/next")
    assert connection.request("GET", "/next").status == 202


def test_a_silent_server_times_out_a_post() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        connection = HttpConnection("127.0.0.1", listener.getsockname()[1], connect_timeout_s=3, io_timeout_s=0.2,
                                    user_agent="t")
        with pytest.raises(TimeoutError):
            connection.request("POST", "/r", b"{}")  # accepted by the backlog, never answered
    finally:
        listener.close()


def test_a_long_poll_outwaits_the_io_timeout_and_an_ordinary_call_does_not(serve: type[ScriptedServer]) -> None:
    """The kernel's timeout (SO_RCVTIMEO) bounds each wait; a long poll (``next``) goes on waiting for its answer to
    begin, an ordinary call gives up."""
    server = serve([Late(OK), Late(OK), OK])
    connection = HttpConnection("127.0.0.1", server.port, connect_timeout_s=3, io_timeout_s=IO_TIMEOUT_S,
                                user_agent="t")
    assert connection.request("GET", "/next", long_poll=True).status == 202
    with pytest.raises(TimeoutError):
        connection.request("POST", "/r", b"{}")
    # on a new connection, once the single-threaded server is done with the old one
    assert connection.request("GET", "/next", long_poll=True).status == 202
    assert server.connections == 2


def test_a_long_poll_whose_answer_stalls_halfway_times_out(serve: type[ScriptedServer]) -> None:
    server = serve([Stall(OK[:40]), OK])
    connection = HttpConnection("127.0.0.1", server.port, connect_timeout_s=3, io_timeout_s=IO_TIMEOUT_S,
                                user_agent="t")
    with pytest.raises(TimeoutError):
        connection.request("GET", "/next", long_poll=True)
    assert connection.request("GET", "/next", long_poll=True).status == 202


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param("/x", {"Lambda-Runtime-Function-Error-Type": "Boom\r\nX-Injected: yes"}, id="crlf-value"),
        pytest.param("/x", {"Lambda-Runtime-Function-Error-Type": "Ошибка"}, id="non-ascii-value"),
        pytest.param("/x", {"X-Bad\r\nName": "v"}, id="crlf-name"),
        pytest.param("/x HTTP/1.1\r\nX-Injected: yes\r\n\r\nGET /y", {}, id="crlf-path"),
    ],
)
def test_an_unsafe_header_or_path_is_refused_before_anything_is_sent(
        serve: type[ScriptedServer], path: str, headers: dict[str, str]) -> None:
    """The last line of defence: a ValueError (never retried), and not one byte on the wire."""
    server = serve([OK, OK])
    connection = connect(server)
    with pytest.raises(UnsafeRequest):
        connection.request("POST", path, b"{}", headers)
    assert connection.request("POST", "/ok", b"{}").status == 202
    assert len(server.requests) == 1 and server.requests[0].startswith(b"POST /ok ")
    connection.close()


def test_a_request_without_body_or_headers_is_checked_once_then_sent_as_made(serve: type[ScriptedServer]) -> None:
    """``next`` is the same request every time: made and checked once, then the same bytes; an unsafe one is
    refused as any other, and never kept."""
    server = serve([OK, OK])
    connection = connect(server)
    for _ in range(2):
        with pytest.raises(UnsafeRequest):
            connection.request("GET", "/x HTTP/1.1\r\nX-Injected: yes\r\n\r\nGET /y")
    for _ in range(2):
        assert connection.request("GET", "/next").status == 202
    assert len(server.requests) == 2
    assert server.requests[0] == server.requests[1]
    assert server.requests[0].startswith(b"GET /next HTTP/1.1\r\nHost: ")
    connection.close()


EVENT = b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r2\r\nContent-Length: 7\r\n\r\n{\"n\":2}"


@pytest.mark.parametrize("body_bytes", [2, COALESCE_BYTES + 1, DIRECT_BODY_BYTES + 1])
def test_a_get_pipelined_behind_a_post_reaches_the_server_before_the_posts_answer_is_read(
        serve: type[ScriptedServer], body_bytes: int) -> None:
    """Both answers in one write of the server's (the case a fast Runtime API makes): the first read brings the
    start of the second answer, which the second ``receive`` is given, over the same connection."""
    server = serve([OK + EVENT, b""])
    connection = connect(server)
    connection.send("POST", "/r/1/response", b"x" * body_bytes, then_get="/next")
    assert connection.unanswered == 2
    wait_for(lambda: len(server.requests) == 2, what="the pipelined GET to reach the server")
    assert server.requests[1].startswith(b"GET /next HTTP/1.1\r\n")
    assert server.requests[0].endswith(b"x" * body_bytes)
    first = connection.receive()
    assert (first.status, first.body, connection.unanswered) == (202, b'{"status":"OK"}', 1)
    second = connection.receive(long_poll=True, direct_body=True)
    assert (second.status, second.headers["lambda-runtime-aws-request-id"], bytes(second.body)) == (
        200, "r2", b'{"n":2}')
    assert (connection.unanswered, server.connections) == (0, 1)


def test_a_pipelined_get_whose_answer_comes_later_is_long_polled(serve: type[ScriptedServer]) -> None:
    server = serve([OK, Late(EVENT), OK])
    connection = HttpConnection("127.0.0.1", server.port, connect_timeout_s=3, io_timeout_s=IO_TIMEOUT_S,
                                user_agent="test-agent")
    connection.send("POST", "/r/1/response", b"{}", then_get="/next")
    assert connection.receive().status == 202
    assert connection.receive(long_poll=True).headers["lambda-runtime-aws-request-id"] == "r2"  # after LATE_S
    assert connection.request("POST", "/r/2/response", b"{}").status == 202
    assert server.connections == 1


def test_bytes_nobody_asked_for_close_the_connection(serve: type[ScriptedServer]) -> None:
    server = serve([OK + b"HTTP/1.1 200 OK\r\n", OK])
    connection = connect(server)
    response = connection.request("POST", "/r/1/response", b"{}")
    assert response.status == 202 and not response.keep_alive
    assert connection.request("POST", "/r/2/response", b"{}").status == 202
    assert server.connections == 2


def test_a_first_answer_that_closes_the_connection_drops_the_pipelined_request(serve: type[ScriptedServer]) -> None:
    """Nothing is left to read for the pipelined GET: ``unanswered`` tells the caller to ask again."""
    closing = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    server = serve([Close(closing), EVENT])
    connection = connect(server)
    connection.send("POST", "/r/1/response", b"{}", then_get="/next")
    assert connection.receive().status == 503
    assert connection.unanswered == 0
    assert connection.request("GET", "/next").headers["lambda-runtime-aws-request-id"] == "r2"
    assert server.connections == 2
