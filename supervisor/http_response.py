"""Parsing the Runtime API's HTTP/1.x responses, fed as the socket delivers them.

The Runtime API answers with a status line, headers and a body framed by Content-Length or chunked encoding;
that is all this parses, and anything else is refused with :class:`ResponseParseError` (the connection is then
closed, and the caller decides whether to retry). Every size is bounded: the head, each chunk-size line, the
trailers and the body. Written by hand instead of using httptools, which costs the supervisor ~0.3 MB of memory
at rest and imports ``typing`` (~0.5 MB, ~4 ms at each cold start) for a ``Protocol`` class.
"""

from __future__ import annotations

#: The status line and headers together, at most: a ``next`` answer carries the client context and Cognito identity
#: in its headers, which the supervisor refuses above its own frame header limit (64 KiB), with an error post.
MAX_HEAD_BYTES = 1 << 20
MAX_HEADERS = 100
#: A chunk-size line (hex size and extensions), at most.
MAX_CHUNK_LINE_BYTES = 1024
#: A body, at most: well above any event Lambda hands out (6 MB synchronous, 1 MB asynchronous).
MAX_BODY_BYTES = 1 << 30
#: What may open a response: anything else (an SSH banner, a stray byte) is refused at once.
STATUS_LINE_START = b"HTTP/1."

#: RFC 9110 token characters (a header name), and the bytes a head may hold: HTAB, SP, VCHAR and obs-text, and CR
#: and LF only as CRLF line ends (checked apart).
_TOKEN = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEAD_BYTES = bytes([0x09, 0x0A, 0x0D, *range(0x20, 0x7F), *range(0x80, 0x100)])
_HEX = b"0123456789abcdefABCDEF"
_TOKEN_BYTES = _TOKEN.encode("ascii")
_FRAMING_HEADERS = ("content-length", "transfer-encoding")

_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _DONE = range(7)


class ResponseParseError(Exception):
    """What the Runtime API sent is not an HTTP/1.x response this client reads."""


class Response:
    """A whole response: status, headers by lower-case name (values decoded as Latin-1, as HTTP defines), body."""

    __slots__ = ("chunks", "complete", "direct_body", "headers", "keep_alive", "status", "surplus")

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.complete = False
        self.keep_alive = False
        #: The body, when it was read into the connection's body buffer (see HttpConnection.receive).
        self.direct_body: memoryview | None = None
        #: Bytes that came after the end of the response: the start of the next one's, if another was asked for.
        self.surplus = b""

    def __repr__(self) -> str:
        return f"Response(status={self.status}, headers={self.headers!r}, complete={self.complete})"

    @property
    def body(self) -> bytes | memoryview:
        if self.direct_body is not None:
            return self.direct_body
        return b"".join(self.chunks)

    def direct_body_length(self, at_least: int) -> int | None:
        """Once the head is in: the Content-Length of a body of ``at_least`` bytes or more, else None."""
        if not self.status or self.complete or "transfer-encoding" in self.headers:
            return None
        length = int(self.headers.get("content-length", "0"))  # checked digits by the parser
        return length if length >= at_least else None


class ResponseParser:
    """Fills ``response`` from the bytes :meth:`feed` is given, until ``response.complete``. Bytes after the end
    of the response are kept in ``response.surplus``: the connection decides whether they are the next answer's
    start (a request was pipelined behind this one) or bytes nobody asked for."""

    __slots__ = ("_body_bytes", "_pending", "_remaining", "_response", "_state")

    def __init__(self, response: Response) -> None:
        self._response = response
        self._state = _HEAD
        self._pending = b""  # an incomplete line-based part (head, chunk-size line, trailers) kept for more bytes
        self._remaining = 0  # bytes left of the body or of the current chunk
        self._body_bytes = 0

    def feed(self, data: bytes) -> None:
        if self._pending:
            data = self._pending + data
            self._pending = b""
        while data:
            if self._state == _DONE:
                self._response.surplus += data
                return
            rest = self._step(data)
            if rest is None:  # a line-based part is not complete yet
                self._keep(data)
                return
            data = rest

    def _keep(self, data: bytes) -> None:
        limit = MAX_CHUNK_LINE_BYTES if self._state == _CHUNK_SIZE else MAX_HEAD_BYTES
        if len(data) > limit:
            raise ResponseParseError(f"a response's head, chunk line or trailers longer than {limit} bytes")
        if self._state == _HEAD and not data.startswith(STATUS_LINE_START[:len(data)]):
            raise ResponseParseError(f"not an HTTP/1.x response: {bytes(data[:16])!r}")
        self._pending = data

    def _step(self, data: bytes) -> bytes | None:
        """Parse from the start of ``data`` in the current state: the bytes left over, or None for more."""
        state = self._state
        if state == _HEAD:
            return self._head(data)
        if state in (_BODY, _CHUNK_DATA):
            return self._body(data)
        if state == _CHUNK_SIZE:
            return self._chunk_size(data)
        if state == _CHUNK_END:
            if len(data) < 2:
                return None
            if data[:2] != b"\r\n":
                raise ResponseParseError("a chunk does not end with CRLF")
            self._state = _CHUNK_SIZE
            return data[2:]
        return self._trailer(data)

    def _head(self, data: bytes) -> bytes | None:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return None
        if end > MAX_HEAD_BYTES:
            raise ResponseParseError(f"a response head longer than {MAX_HEAD_BYTES} bytes")
        lines = _text_lines(data[:end])
        http_1_1 = _read_status_line(self._response, lines[0])
        if len(lines) - 1 > MAX_HEADERS:
            raise ResponseParseError(f"more than {MAX_HEADERS} headers")
        headers = self._response.headers
        for line in lines[1:]:  # kept lean: this runs for every header of every response
            name, colon, value = line.partition(":")
            if not colon or not name:
                raise _bad_header(line)
            key, value = name.lower(), value.strip(" \t")
            if key in headers and key in _FRAMING_HEADERS and headers[key] != value:
                raise ResponseParseError(f"two different {key} headers")
            headers[key] = value
        if "".join(headers).encode("latin-1").translate(None, _TOKEN_BYTES):  # every name at once
            raise ResponseParseError(f"a header name that is not a token in {sorted(headers)!r}"[:200])
        connection = headers.get("connection")
        if connection is None:
            self._response.keep_alive = http_1_1
        else:
            tokens = {token.strip() for token in connection.lower().split(",")}
            self._response.keep_alive = "close" not in tokens if http_1_1 else "keep-alive" in tokens
        self._frame_body(headers)
        return data[end + 4:]

    def _frame_body(self, headers: dict[str, str]) -> None:
        encoding, length = headers.get("transfer-encoding"), headers.get("content-length")
        if encoding is not None:
            if length is not None:
                raise ResponseParseError("a response with both Transfer-Encoding and Content-Length")
            if encoding.lower() != "chunked":
                raise ResponseParseError(f"an unsupported Transfer-Encoding: {encoding[:64]!r}")
            self._state = _CHUNK_SIZE
        elif length is not None:
            if not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY_BYTES:
                raise ResponseParseError(f"a bad Content-Length: {length[:64]!r}")
            self._remaining = int(length)
            self._state = _BODY
            if not self._remaining:
                self._finish()
        elif self._response.status in (204, 304):
            self._finish()
        else:
            raise ResponseParseError("a response with neither Content-Length nor chunked encoding")

    def _body(self, data: bytes) -> bytes:
        part = data[:self._remaining]
        self._response.chunks.append(part)
        self._remaining -= len(part)
        if not self._remaining:
            if self._state == _BODY:
                self._finish()
            else:
                self._state = _CHUNK_END
        return data[len(part):]

    def _chunk_size(self, data: bytes) -> bytes | None:
        end = data.find(b"\r\n")
        if end < 0:
            return None
        size_text = data[:end].partition(b";")[0].strip(b" \t")
        if not size_text or len(size_text) > 16 or size_text.translate(None, _HEX):
            raise ResponseParseError(f"a bad chunk size line: {bytes(data[:min(end, 64)])!r}")
        size = int(size_text, 16)
        self._body_bytes += size
        if self._body_bytes > MAX_BODY_BYTES:
            raise ResponseParseError(f"a chunked body larger than {MAX_BODY_BYTES} bytes")
        self._remaining = size
        self._state = _CHUNK_DATA if size else _TRAILER
        return data[end + 2:]

    def _trailer(self, data: bytes) -> bytes | None:
        """Trailer fields after the last chunk are read and dropped (the Runtime API sends none); an empty line
        ends the response."""
        end = data.find(b"\r\n")
        if end < 0:
            return None
        if end:
            _check_trailer(_text_lines(data[:end])[0])
            self._body_bytes += end + 2  # the trailers' bytes count against the body's limit
            if self._body_bytes > MAX_BODY_BYTES:
                raise ResponseParseError("trailers too long")
        else:
            self._finish()
        return data[end + 2:]

    def _finish(self) -> None:
        self._state = _DONE
        self._response.complete = True


def _text_lines(head: bytes) -> list[str]:
    """The lines of a head (or of one trailer), decoded as Latin-1: checked whole first, so that no control
    character and no CR or LF but a line end is in any of them."""
    crlf = head.count(b"\r\n")
    if head.translate(None, _HEAD_BYTES) or head.count(b"\r") != crlf or head.count(b"\n") != crlf:
        raise ResponseParseError(f"a control character in a response head: {bytes(head[:64])!r}")
    return head.decode("latin-1").split("\r\n")


def _read_status_line(response: Response, line: str) -> bool:
    """Sets the status; whether the version is HTTP/1.1 (else 1.0)."""
    version, _, rest = line.partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not (code.isascii() and code.isdigit() and len(code) == 3) or \
            rest[3:4] not in ("", " "):
        raise ResponseParseError(f"a bad status line: {line[:64]!r}")
    status = int(code)
    if not 200 <= status <= 599:  # 1xx interim answers: the Runtime API never sends them to what we ask
        raise ResponseParseError(f"an unexpected status {status}")
    response.status = status
    return version == "HTTP/1.1"


def _check_trailer(line: str) -> None:
    """A trailer field is a header line; it is dropped."""
    name, colon, _ = line.partition(":")
    if not colon or not name or name.strip(_TOKEN):
        raise _bad_header(line)


def _bad_header(line: str) -> ResponseParseError:
    """Not ``name: value`` with a token for a name (a folded line starts with a space, which is no token's)."""
    return ResponseParseError(f"a bad header line: {line[:64]!r}")
