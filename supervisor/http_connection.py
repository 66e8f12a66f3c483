"""One keep-alive HTTP/1.1 connection to the Runtime API, cheap per call: on every invocation's path twice.

Requests are written directly and responses parsed by http_response.py (instead of ``http.client`` or
``requests``, which cost several times more per call; figures in the README). Timeouts are the socket's kernel
timeouts, set once per connection, so no call costs an extra system call. Any failure closes the connection, so
the next call starts on a clean one; the caller decides whether to retry. A bare GET may be pipelined behind a
request (HTTP/1.1 answers in order): the bytes of its answer that arrive with the first answer are kept for it.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
from _socket import IPPROTO_TCP, SO_RCVTIMEO, SO_SNDTIMEO, SOCK_STREAM, SOL_SOCKET, TCP_NODELAY, getaddrinfo
from _socket import socket as Socket

from lambda_supervisor.shared.printable import is_header_safe

from .http_response import Response, ResponseParseError, ResponseParser

__all__ = ["HttpConnection", "IncompleteResponse", "PollInterrupted", "Response", "ResponseParseError",
           "UnsafeRequest"]

#: Read size per ``recv``: under glibc's mmap threshold, so small answers do not map and unmap a buffer each time.
RECV_BYTES = 65536
#: Bodies up to this size are sent in one write together with the head; larger ones are not copied to do so.
COALESCE_BYTES = 64 * 1024
#: A body at least this large, when the caller lets it, is read straight into the connection's body buffer, kept
#: for the next one: no chunk is copied and no fresh buffer is paged in (a 1 MiB event costs ~0.2 ms less).
DIRECT_BODY_BYTES = 256 * 1024
#: Requests without a body or headers (``next``) kept ready to send, at most: the supervisor makes one.
MAX_BARE_REQUESTS = 4


class IncompleteResponse(ConnectionError):
    """The Runtime API closed the connection before the response was complete."""


class PollInterrupted(ConnectionAbortedError):
    """A long poll was ended by :meth:`HttpConnection.interrupt` before its answer began."""


#: A C ``long`` (as ``ssize_t`` on Linux, whose ABIs are LP64 or ILP32): a ``struct timeval``'s two fields.
_LONG_BYTES = (sys.maxsize.bit_length() + 1) // 8


def _timeval(seconds: float) -> bytes:
    """A ``struct timeval`` for SO_RCVTIMEO/SO_SNDTIMEO; at least 1 µs, as zero would mean no timeout at all.
    Written with int.to_bytes: ``struct`` would be one more module in the supervisor, for two calls at start."""
    microseconds = max(round(seconds * 1_000_000), 1)
    return b"".join(field.to_bytes(_LONG_BYTES, sys.byteorder, signed=True)
                    for field in (microseconds // 1_000_000, microseconds % 1_000_000))


class UnsafeRequest(ValueError):
    """A request line or header holds what HTTP cannot carry safely (a CR, an LF, a non-ASCII character). Callers
    make their values safe first (shared/printable.py); this is the last line of defence, and never retried."""


def _refuse_unsafe(method: str, path: str, headers: dict[str, str] | None) -> None:
    if not is_header_safe(method + path) or " " in path:  # one check of both: on every request's path
        raise UnsafeRequest(f"unsafe request line: {method!r} {path!r}")
    for name, value in (headers or {}).items():
        if not is_header_safe(name + value) or ":" in name:
            raise UnsafeRequest(f"unsafe header: {name!r}: {value!r}")


class HttpConnection:
    """A persistent connection to ``host:port`` with TCP_NODELAY, opened on first use and after any failure.

    A send or receive that makes no progress for ``io_timeout_s`` raises TimeoutError, except while a long poll
    waits for its answer to begin. ``unanswered`` counts the requests sent whose answers are still to be read."""

    def __init__(self, host: str, port: int, *, connect_timeout_s: float, io_timeout_s: float,
                 user_agent: str, interruptible: bool = False) -> None:
        # bytes: getaddrinfo would IDNA-encode a str, importing encodings.idna and unicodedata at the first connect,
        # on the way to the first response (config.py only accepts an ASCII host)
        self._address = (host.encode("ascii"), port)
        self._connect_timeout_s = connect_timeout_s
        self._timeval = _timeval(io_timeout_s)
        self._fixed_headers = f"Host: {host}:{port}\r\nUser-Agent: {user_agent}\r\n".encode("latin-1")
        self._socket: Socket | None = None
        #: With ``interruptible``, a long poll also waits on this pipe: :meth:`interrupt` writes to it.
        self._wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC) if interruptible else None
        self._body_buffer = bytearray()  # large bodies read with ``direct_body`` land here
        self._bare_requests: dict[tuple[str, str], bytes] = {}  # requests without body or headers, made once
        self.unanswered = 0
        self._surplus = b""  # what came after the last answer read: the start of a pipelined request's answer

    def interrupt(self) -> None:
        """From another thread: end a long poll whose answer has not begun (PollInterrupted); one whose answer has
        begun is read to its end, so that an event already handed out is not lost. Only if ``interruptible``."""
        if self._wake is not None:
            with contextlib.suppress(BlockingIOError):  # full: a byte is there already
                os.write(self._wake[1], b"x")

    def close(self) -> None:
        self.unanswered = 0
        self._surplus = b""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def request(self, method: str, path: str, body: bytes | memoryview | None = None,
                headers: dict[str, str] | None = None, *, long_poll: bool = False,
                direct_body: bool = False) -> Response:
        """Send one request and read the whole response. ``long_poll`` waits as long as it takes for the answer
        to begin (``next``: Lambda freezes us there between invocations); ``direct_body``: see :meth:`receive`."""
        self.send(method, path, body, headers)
        return self.receive(long_poll=long_poll, direct_body=direct_body)

    def send(self, method: str, path: str, body: bytes | memoryview | None = None,
             headers: dict[str, str] | None = None, *, then_get: str | None = None) -> None:
        """Send a request, and with ``then_get`` a bare GET of that path behind it in the same write; read each
        answer, in order, with :meth:`receive`. A send only waits when the peer stops reading."""
        sock = self._socket if self._socket is not None else self._connect()
        try:
            self._send(sock, method, path, body, headers, then_get)
            self.unanswered += 1 if then_get is None else 2
        except BlockingIOError:  # SO_SNDTIMEO: the peer stopped reading
            self.close()
            raise TimeoutError("the Runtime API stopped reading the request") from None
        except BaseException:
            self.close()
            raise

    def receive(self, *, long_poll: bool = False, direct_body: bool = False) -> Response:
        """Read the whole answer to the request sent last. With ``direct_body``, a large body is read into the
        connection's body buffer and ``body`` is a view of it, valid until the next response read with
        ``direct_body``."""
        if self._socket is None:
            raise IncompleteResponse("the connection closed before the answer was read")
        wake_fd = self._wake[0] if long_poll and self._wake is not None else None
        try:
            response = self._receive(self._socket, long_poll, direct_body, wake_fd)
        except BaseException:
            self.close()
            raise
        self.unanswered = max(self.unanswered - 1, 0)
        if response.surplus:
            if self.unanswered:
                self._surplus = response.surplus  # the next answer has begun
            else:
                response.keep_alive = False  # bytes nobody asked for: the connection is not used again
        if not response.keep_alive:
            self.close()
        return response

    def _connect(self) -> Socket:
        sock = _open_connection(self._address, self._connect_timeout_s)
        sock.settimeout(None)
        sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        sock.setsockopt(SOL_SOCKET, SO_RCVTIMEO, self._timeval)
        sock.setsockopt(SOL_SOCKET, SO_SNDTIMEO, self._timeval)
        self._socket = sock
        return sock

    def _send(self, sock: Socket, method: str, path: str, body: bytes | memoryview | None,
              headers: dict[str, str] | None, then_get: str | None) -> None:
        following = self._bare("GET", then_get) if then_get is not None else b""
        if body is None and not headers:  # ``next``
            request = self._bare(method, path)
            sock.sendall(request + following if following else request)
            return
        head = self._head(method, path, body, headers)
        if body is not None and len(body) <= COALESCE_BYTES:
            head.append(body)
            body = None
        if not body:
            head.append(following)
            following = b""
        sock.sendall(b"".join(head))
        if body:
            sock.sendall(body)
        if following:
            sock.sendall(following)

    def _bare(self, method: str, path: str) -> bytes:
        """A request without body or headers (``next``): the same bytes every time, made and checked once."""
        request = self._bare_requests.get((method, path))
        if request is None:
            request = b"".join(self._head(method, path, None, None))
            if len(self._bare_requests) < MAX_BARE_REQUESTS:
                self._bare_requests[(method, path)] = request
        return request

    def _head(self, method: str, path: str, body: bytes | memoryview | None,
              headers: dict[str, str] | None) -> list[bytes | memoryview]:
        """The request line and headers, to the blank line that ends them; UnsafeRequest if any cannot be sent."""
        _refuse_unsafe(method, path, headers)
        head: list[bytes | memoryview] = [f"{method} {path} HTTP/1.1\r\n".encode("latin-1"), self._fixed_headers]
        if headers:
            head.extend(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items())
        if body is not None:
            head.append(b"Content-Length: %d\r\n" % len(body))
        head.append(b"\r\n")
        return head

    def _receive(self, sock: Socket, long_poll: bool, direct_body: bool,
                 wake_fd: int | None = None) -> Response:
        response = Response()
        parser = ResponseParser(response)
        waiting = long_poll
        if self._surplus:  # this answer began with the last one
            surplus, self._surplus = self._surplus, b""
            waiting = False
            self._feed(sock, parser, response, surplus, direct_body)
        while not response.complete:
            if waiting and wake_fd is not None:
                _await_answer(sock, wake_fd)
            try:
                data = sock.recv(RECV_BYTES)
            except BlockingIOError:  # SO_RCVTIMEO passed with nothing received
                if waiting:
                    continue
                raise TimeoutError("no answer from the Runtime API within the timeout") from None
            waiting = False
            if not data:
                raise IncompleteResponse("the Runtime API closed the connection before the response was complete")
            self._feed(sock, parser, response, data, direct_body)
        return response

    def _feed(self, sock: Socket, parser: ResponseParser, response: Response, data: bytes,
              direct_body: bool) -> None:
        parser.feed(data)
        if direct_body and (length := response.direct_body_length(DIRECT_BODY_BYTES)) is not None:
            response.direct_body = self._read_body(sock, response.chunks, length)
            response.complete = True

    def _read_body(self, sock: Socket, start: list[bytes], length: int) -> memoryview:
        """The rest of a ``length``-byte body whose ``start`` is in, read into the body buffer (the parser is
        left behind: it is made anew for each response)."""
        if len(self._body_buffer) < length:
            self._body_buffer = bytearray(length)
        view = memoryview(self._body_buffer)[:length]
        received = 0
        for chunk in start:
            view[received:received + len(chunk)] = chunk
            received += len(chunk)
        while received < length:
            try:
                count = sock.recv_into(view[received:])
            except BlockingIOError:  # SO_RCVTIMEO passed with nothing received
                raise TimeoutError("the Runtime API stopped sending the response") from None
            if not count:
                raise IncompleteResponse("the Runtime API closed the connection before the response was complete")
            received += count
        return view


def _open_connection(address: tuple[bytes, int], timeout_s: float) -> Socket:
    """``socket.create_connection`` on the C socket type: socket.py (with selectors and its enums) stays off the
    bootstrap's path. Each address in turn; the last one's error if none connects."""
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in getaddrinfo(address[0], address[1], 0, SOCK_STREAM):
        sock = Socket(family, kind, proto)
        try:
            sock.settimeout(timeout_s)
            sock.connect(sockaddr)
        except OSError as problem:
            sock.close()
            error = problem
            continue
        return sock
    raise error if error is not None else OSError(f"no address to connect to for {address[0]!r}")


def _await_answer(sock: Socket, wake_fd: int) -> None:
    """Block until the socket has something to read; PollInterrupted if ``wake_fd`` is readable first (an answer
    that has arrived wins: it is read)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(wake_fd, select.POLLIN)
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if sock.fileno() in ready:
            return
        if wake_fd in ready:
            raise PollInterrupted("the long poll was interrupted: the supervisor is shutting down")
