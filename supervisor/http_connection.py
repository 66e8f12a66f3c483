"""One keep-alive HTTP/1.1 connection to the Runtime API, cheap per call: on every invocation's path twice.

Requests are written directly and responses parsed by ``httptools`` (instead of ``http.client`` or ``requests``,
which cost several times more per call; figures in the README). Timeouts are the socket's kernel timeouts, set
once per connection, so no call costs an extra system call. Any failure closes the connection, so the next call
starts on a clean one; the caller decides whether to retry.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

import httptools

from lambda_supervisor.shared.printable import is_header_safe

#: Read size per ``recv``: under glibc's mmap threshold, so small answers do not map and unmap a buffer each time.
RECV_BYTES = 65536
#: Bodies up to this size are sent in one write together with the head; larger ones are not copied to do so.
COALESCE_BYTES = 64 * 1024


class IncompleteResponse(ConnectionError):
    """The Runtime API closed the connection before the response was complete."""


#: What a broken exchange raises besides OSError (timeouts and resets are OSError too).
ResponseParseError = httptools.HttpParserError


@dataclass
class Response:
    """A whole response: status, headers by lower-case name (values decoded as Latin-1, as HTTP defines), body."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    complete: bool = False
    keep_alive: bool = False
    parser: httptools.HttpResponseParser | None = field(default=None, repr=False)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    # httptools parser callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        # asked here: once the message is complete, the parser has already reset for the next one
        assert self.parser is not None
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


def _timeval(seconds: float) -> bytes:
    """A ``struct timeval`` for SO_RCVTIMEO/SO_SNDTIMEO; at least 1 µs, as zero would mean no timeout at all."""
    microseconds = max(round(seconds * 1_000_000), 1)
    return struct.pack("@ll", microseconds // 1_000_000, microseconds % 1_000_000)


class UnsafeRequest(ValueError):
    """A request line or header holds what HTTP cannot carry safely (a CR, an LF, a non-ASCII character). Callers
    make their values safe first (shared/printable.py); this is the last line of defence, and never retried."""


def _refuse_unsafe(method: str, path: str, headers: dict[str, str] | None) -> None:
    if not (is_header_safe(method) and is_header_safe(path) and " " not in path):
        raise UnsafeRequest(f"unsafe request line: {method!r} {path!r}")
    for name, value in (headers or {}).items():
        if not (is_header_safe(name) and is_header_safe(value)) or ":" in name:
            raise UnsafeRequest(f"unsafe header: {name!r}: {value!r}")


class HttpConnection:
    """A persistent connection to ``host:port`` with TCP_NODELAY, opened on first use and after any failure.

    A send or receive that makes no progress for ``io_timeout_s`` raises TimeoutError, except while a long poll
    waits for its answer to begin."""

    def __init__(self, host: str, port: int, *, connect_timeout_s: float, io_timeout_s: float,
                 user_agent: str) -> None:
        self._address = (host, port)
        self._connect_timeout_s = connect_timeout_s
        self._timeval = _timeval(io_timeout_s)
        self._fixed_headers = f"Host: {host}:{port}\r\nUser-Agent: {user_agent}\r\n".encode("latin-1")
        self._socket: socket.socket | None = None

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def request(self, method: str, path: str, body: bytes | memoryview | None = None,
                headers: dict[str, str] | None = None, *, long_poll: bool = False) -> Response:
        """Send one request and read the whole response. ``long_poll`` waits as long as it takes for the answer
        to begin (``next``: Lambda freezes us there between invocations)."""
        self.send(method, path, body, headers)
        return self.receive(long_poll=long_poll)

    def send(self, method: str, path: str, body: bytes | memoryview | None = None,
             headers: dict[str, str] | None = None) -> None:
        """Send a request; read its answer with :meth:`receive`. A send only waits when the peer stops reading."""
        sock = self._socket if self._socket is not None else self._connect()
        try:
            self._send(sock, method, path, body, headers)
        except BlockingIOError:  # SO_SNDTIMEO: the peer stopped reading
            self.close()
            raise TimeoutError("the Runtime API stopped reading the request") from None
        except BaseException:
            self.close()
            raise

    def receive(self, *, long_poll: bool = False) -> Response:
        """Read the whole answer to the request sent last."""
        if self._socket is None:
            raise IncompleteResponse("the connection closed before the answer was read")
        try:
            response = self._receive(self._socket, long_poll)
        except BaseException:
            self.close()
            raise
        if not response.keep_alive:
            self.close()
        return response

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self._address, timeout=self._connect_timeout_s)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, self._timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, self._timeval)
        self._socket = sock
        return sock

    def _send(self, sock: socket.socket, method: str, path: str, body: bytes | memoryview | None,
              headers: dict[str, str] | None) -> None:
        _refuse_unsafe(method, path, headers)
        head: list[bytes | memoryview] = [f"{method} {path} HTTP/1.1\r\n".encode("latin-1"), self._fixed_headers]
        if headers:
            head.extend(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items())
        if body is not None:
            head.append(b"Content-Length: %d\r\n" % len(body))
        head.append(b"\r\n")
        if body is not None and len(body) <= COALESCE_BYTES:
            head.append(body)
            body = None
        sock.sendall(b"".join(head))
        if body:
            sock.sendall(body)

    @staticmethod
    def _receive(sock: socket.socket, long_poll: bool) -> Response:
        response = Response()
        response.parser = parser = httptools.HttpResponseParser(response)
        waiting = long_poll
        while not response.complete:
            try:
                data = sock.recv(RECV_BYTES)
            except BlockingIOError:  # SO_RCVTIMEO passed with nothing received
                if waiting:
                    continue
                raise TimeoutError("no answer from the Runtime API within the timeout") from None
            waiting = False
            if not data:
                raise IncompleteResponse("the Runtime API closed the connection before the response was complete")
            parser.feed_data(data)
        response.parser = None
        return response
