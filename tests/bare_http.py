"""HTTP/1.1 messages read off a bare socket, for tests that play a runtime or a Runtime API by hand: a start line,
headers, and a Content-Length body (or none). The bytes of the next message that came with one are kept, so that
pipelined messages are read one by one."""

from __future__ import annotations

import socket


class Messages:
    """The messages one connection brings, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""  # received and not yet read as a message

    def next(self) -> tuple[bytes, dict[bytes, bytes], bytes]:
        """(start line, headers by lower-case name, body) of the next message; AssertionError if the peer closes."""
        while b"\r\n\r\n" not in self.data:
            self._more()
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        start, *lines = head.split(b"\r\n")
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines)}
        length = int(headers.get(b"content-length", b"0"))
        while len(self.data) < length:
            self._more()
        body, self.data = self.data[:length], self.data[length:]
        return start, headers, body

    def _more(self) -> None:
        data = self.sock.recv(65536)
        assert data, "the peer closed the connection"
        self.data += data
