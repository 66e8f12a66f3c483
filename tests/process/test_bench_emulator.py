"""The bench's emulator (bench/emulator.py): by default it sends an answer's headers and body in two writes, as the
project's emulator does; with ``one_write`` it sends each small answer in one, as Go's net/http does. Counted at
the socket, for the event a bare-socket runtime is handed and for the 202 of its post."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from bare_http import Messages
from bench.emulator import BenchEmulator


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The size of every send made by the emulator's threads while the test runs (not the test's own)."""
    recorded: list[int] = []
    test_thread = threading.get_ident()
    original_send, original_sendall = socket.socket.send, socket.socket.sendall

    def send(self: socket.socket, data: bytes, *flags: int) -> int:
        if threading.get_ident() != test_thread:
            recorded.append(len(data))
        return original_send(self, data, *flags)

    def sendall(self: socket.socket, data: bytes, *flags: int) -> None:
        if threading.get_ident() != test_thread:
            recorded.append(len(data))
        original_sendall(self, data, *flags)

    monkeypatch.setattr(socket.socket, "send", send)
    monkeypatch.setattr(socket.socket, "sendall", sendall)
    yield recorded


def _one_invocation(emulator: BenchEmulator, sends: list[int]) -> tuple[list[int], list[int]]:
    """The sends that carried the event, and those that carried the post's answer."""
    request_id = emulator.submit(b'{"hello": "world"}')
    with socket.create_connection(("127.0.0.1", emulator.port)) as sock:
        messages = Messages(sock)
        sock.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = messages.next()
        assert status.startswith(b"HTTP/1.1 200") and body == b'{"hello": "world"}'
        assert headers[b"lambda-runtime-aws-request-id"] == request_id.encode()
        event_sends = list(sends)
        sends.clear()
        sock.sendall(b"POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                     b"\r\n{}" % request_id.encode())
        status, _, _ = messages.next()
        assert status.startswith(b"HTTP/1.1 202")
    assert emulator.wait_outcome(request_id, 10).response == b"{}"
    return event_sends, list(sends)


@pytest.mark.parametrize(("one_write", "writes"), [(False, 2), (True, 1)])
def test_each_answer_goes_out_in_the_writes_asked_for(sends: list[int], one_write: bool, writes: int) -> None:
    with BenchEmulator(function_timeout_s=10.0, one_write=one_write) as emulator:
        event_sends, post_sends = _one_invocation(emulator, sends)
    assert len(event_sends) == writes, event_sends
    assert len(post_sends) == writes, post_sends
