"""The Runtime API client's own HTTP response parser: what it reads, what it refuses, and that it reads exactly
what httptools (llhttp, which it replaced) reads, however the bytes are split across reads."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_supervisor.supervisor.http_response import (
    MAX_CHUNK_LINE_BYTES,
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    Response,
    ResponseParseError,
    ResponseParser,
)

OK = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}"
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nLambda-Runtime-Aws-Request-Id: abc\r\n\r\n"
           b"3;ext=1\r\n{\"a\r\n5\r\n\": 1}\r\n0\r\nX-Trailer: t\r\n\r\n")


def parse(*parts: bytes) -> Response:
    response = Response()
    parser = ResponseParser(response)
    for part in parts:
        parser.feed(part)
    return response


def test_a_content_length_response() -> None:
    response = parse(OK)
    assert (response.status, response.body, response.complete, response.keep_alive) == (
        202, b'{"status":"OK"}', True, True)
    assert response.headers == {"content-type": "application/json", "content-length": "15"}


def test_a_chunked_response_with_extensions_and_trailers() -> None:
    response = parse(CHUNKED)
    assert (response.status, response.body, response.complete) == (200, b'{"a": 1}', True)
    assert response.headers["lambda-runtime-aws-request-id"] == "abc"
    assert "x-trailer" not in response.headers


@pytest.mark.parametrize("message", [OK, CHUNKED])
def test_fed_one_byte_at_a_time_it_reads_the_same(message: bytes) -> None:
    whole = parse(message)
    split = parse(*(message[i:i + 1] for i in range(len(message))))
    assert (split.status, split.headers, split.body, split.complete) == (
        whole.status, whole.headers, whole.body, True)


def test_incomplete_until_the_last_byte() -> None:
    response = Response()
    parser = ResponseParser(response)
    parser.feed(OK[:-1])
    assert not response.complete and response.status == 202
    parser.feed(OK[-1:])
    assert response.complete


@pytest.mark.parametrize(("head", "keep_alive"), [
    (b"HTTP/1.1 200 OK\r\n", True),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\n", False),
    (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\n", False),
    (b"HTTP/1.0 200 OK\r\n", False),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n", True),
    (b"HTTP/1.1 200\r\n", True),  # no reason phrase
    (b"HTTP/1.1 500 \r\n", True),
])
def test_keep_alive_follows_the_version_and_connection_header(head: bytes, keep_alive: bool) -> None:
    response = parse(head + b"Content-Length: 2\r\n\r\n{}")
    assert (response.body, response.keep_alive, response.complete) == (b"{}", keep_alive, True)


def test_an_empty_body_and_a_bodiless_status_complete_at_the_head() -> None:
    assert parse(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n").complete
    assert parse(b"HTTP/1.1 204 No Content\r\n\r\n").complete


def test_values_are_trimmed_names_lower_cased_and_latin_1_decoded() -> None:
    response = parse(b"HTTP/1.1 200 OK\r\nX-Odd:  caf\xe9\t \r\nContent-Length:2\r\n\r\n{}")
    assert response.headers["x-odd"] == "caf\xe9"


def test_bytes_after_the_response_are_kept_apart_for_the_connection_to_judge() -> None:
    """The start of a pipelined request's answer, or bytes nobody asked for: the connection knows which."""
    response = parse(OK + b"HTTP/1.1 200 OK\r\n")
    assert response.complete and response.body == b'{"status":"OK"}' and response.keep_alive
    assert response.surplus == b"HTTP/1.1 200 OK\r\n"
    assert parse(OK).surplus == b""


@pytest.mark.parametrize("message", [
    b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nNo-Colon\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n: empty-name\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-A: 1\nX-Injected: 2\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-A: 1\r2\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-A: \x1b[31m\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-A: \x7f\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n",  # a digit to str.isdigit(), once decoded as Latin-1
    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\n\r\n",  # neither length nor chunks: it could only end with the connection
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n",
])
def test_anything_else_is_refused(message: bytes) -> None:
    with pytest.raises(ResponseParseError):
        parse(message)
    with pytest.raises(ResponseParseError):  # the same split into single bytes
        parse(*(message[i:i + 1] for i in range(len(message))))


@pytest.mark.parametrize("start", [b"S", b"SSH-2.0", b"\x16\x03\x01", b"http/1.1 200"])
def test_garbage_is_refused_from_its_first_bytes(start: bytes) -> None:
    """Not only once a blank line arrives: a peer that is not HTTP is refused without waiting for a timeout."""
    with pytest.raises(ResponseParseError):
        parse(start)


@pytest.mark.parametrize("message", [
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * MAX_HEAD_BYTES + b"\r\n",  # no end of the head in sight
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * MAX_HEAD_BYTES + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * (MAX_HEADERS + 1) + b"Content-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * MAX_CHUNK_LINE_BYTES,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: " + b"t" * MAX_HEAD_BYTES,
])
def test_every_part_is_bounded(message: bytes) -> None:
    with pytest.raises(ResponseParseError):
        parse(message)


def test_a_head_larger_than_a_frame_header_is_read() -> None:
    """A 70 kB client context: the supervisor answers it with Runtime.EventMetadataTooLarge, so it must be read."""
    response = parse(b"HTTP/1.1 200 OK\r\nLambda-Runtime-Client-Context: " + b"c" * 70_000 +
                     b"\r\nContent-Length: 2\r\n\r\n{}")
    assert response.complete and len(response.headers["lambda-runtime-client-context"]) == 70_000


def test_the_head_limit_still_lets_a_large_head_through() -> None:
    response = parse(b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * (MAX_HEAD_BYTES // 2) + b"\r\nContent-Length: 0\r\n\r\n")
    assert response.complete and len(response.headers["x-big"]) == MAX_HEAD_BYTES // 2


def test_a_large_body_in_pieces_is_kept_as_they_came() -> None:
    body = bytes(range(256)) * 4096
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    pieces = [head + body[:1000], *(body[i:i + 65536] for i in range(1000, len(body), 65536))]
    response = parse(*pieces)
    assert response.complete and response.body == body and len(response.chunks) == len(pieces)


# -- the same as httptools ------------------------------------------------------------------------------------

_NAMES = st.sampled_from(["X-Amz-Deadline-Ms", "Lambda-Runtime-Aws-Request-Id", "Content-Type", "Date", "X-A"])
_VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF, blacklist_characters="\x7f"),
                  max_size=40)


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(a valid response as the Runtime API could send it, its body)."""
    status = draw(st.sampled_from([200, 202, 400, 403, 410, 413, 500, 502]))
    version = draw(st.sampled_from([b"1.1", b"1.0"]))
    head = b"HTTP/%s %d %s\r\n" % (version, status, draw(st.sampled_from([b"OK", b"Some Reason", b""])))
    for name, value in draw(st.lists(st.tuples(_NAMES, _VALUES), max_size=6)):
        head += f"{name}:{draw(st.sampled_from(['', ' ', '  ']))}{value}\r\n".encode("latin-1")
    if draw(st.booleans()):
        head += b"Connection: " + draw(st.sampled_from([b"close", b"keep-alive"])) + b"\r\n"
    body = draw(st.binary(max_size=300))
    if draw(st.booleans()):
        sizes = draw(st.lists(st.integers(1, 64), max_size=8))
        chunks, at = [], 0
        for size in sizes:
            if at < len(body):
                chunks.append(b"%x\r\n%s\r\n" % (len(body[at:at + size]), body[at:at + size]))
                at += size
        body = body[:at]
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(chunks) + b"0\r\n\r\n", body
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body, body


class _Collect:
    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body = b""
        self.complete = False
        self.parser: Any = None
        self.status = 0
        self.keep_alive = False

    def on_headers_complete(self) -> None:  # asked here: a complete message has reset the parser
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


@settings(max_examples=300, deadline=None)
@given(responses(), st.lists(st.integers(1, 400), max_size=6))
def test_it_reads_what_httptools_reads(message_and_body: tuple[bytes, bytes], cuts: list[int]) -> None:
    httptools = pytest.importorskip("httptools")
    message, body = message_and_body
    collected = _Collect()
    oracle = collected.parser = httptools.HttpResponseParser(collected)
    oracle.feed_data(message)
    assert collected.complete and collected.body == body
    points = sorted({0, len(message), *(cut % (len(message) + 1) for cut in cuts)})
    response = parse(*(message[a:b] for a, b in itertools.pairwise(points)))
    assert response.complete and response.body == body
    assert (response.status, response.keep_alive) == (collected.status, collected.keep_alive)
    assert response.headers == collected.headers
