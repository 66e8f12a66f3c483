"""The wire protocol on its own: frames (round trips, arbitrary chunking, every way a stream can be refused) and
the typed messages they carry (each builder's output parses back, and a parser takes nothing malformed)."""

from __future__ import annotations

import contextlib
import itertools
import json
import struct
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_supervisor.shared import protocol
from lambda_supervisor.shared.protocol import (
    BYTES_CONTENT_TYPE,
    MAGIC,
    MAX_HEADER_BYTES,
    MAX_INIT_LEFTOVERS,
    PREFIX_BYTES,
    ErrorMessage,
    ForkedMessage,
    ForkFailedMessage,
    ForkRequest,
    Frame,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    InitErrorMessage,
    InitLeftovers,
    InvalidMessage,
    InvokeMessage,
    MessageType,
    ReadyMessage,
    ResultMessage,
    _encoding,
    encode_frame,
    json_loads,
    parse_fork_reply,
    parse_reply,
    parse_startup,
)

#: The frame prefix as the wire format defines it, written here independently of protocol.py.
PREFIX = struct.Struct(">4sII")
#: Every frame type's value (MessageType is plain constants at run time, not an iterable enum).
MESSAGE_TYPES = [value for name, value in vars(MessageType).items() if name.isupper()]


def raw_frame(header: bytes, payload: bytes = b"", magic: bytes = MAGIC) -> bytes:
    """A frame built by hand, so that it can be wrong in ways encode_frame refuses to be."""
    return PREFIX.pack(magic, len(header), len(payload)) + header + payload


def decode_one(data: bytes, **limits: int) -> Frame:
    decoder = FrameDecoder(**limits)
    frames = decoder.feed(data)
    assert len(frames) == 1
    assert decoder.pending_bytes == 0
    return frames[0]


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    bounds = [0, *points, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


# -- round trips -----------------------------------------------------------------------------------------------


def test_prefix_is_twelve_bytes() -> None:
    assert PREFIX.size == PREFIX_BYTES == 12
    data = encode_frame({"type": "x"}, b"abc")
    assert data[:4] == MAGIC
    assert int.from_bytes(data[4:8], "big") == len(b'{"type":"x"}')
    assert int.from_bytes(data[8:12], "big") == 3


def test_round_trip_empty_payload() -> None:
    frame = decode_one(encode_frame({"type": MessageType.READY, "pid": 42}))
    assert frame.type == "ready"
    assert frame.header == {"type": "ready", "pid": 42}
    assert frame.payload == b""


def test_round_trip_every_byte_value() -> None:
    payload = bytes(range(256)) * 3 + bytes(range(255, -1, -1))
    frame = decode_one(encode_frame({"type": MessageType.INVOKE, "request_id": "r"}, payload))
    assert frame.payload == payload
    assert frame.header["request_id"] == "r"


def test_round_trip_unicode_header() -> None:
    header = {"type": "résumé ✓", "message": "日本語 \U0001f600 \u00e9\u0301", "nested": {"list": [1, 2.5, None, True]}}
    data = encode_frame(header, "ü".encode())
    # the header travels as UTF-8, not as \u escapes
    assert "日本語".encode() in data
    frame = decode_one(data)
    assert frame.header == header
    assert frame.type == "résumé ✓"
    assert frame.payload == "ü".encode()


def test_message_type_is_sent_as_its_string_value() -> None:
    frame = decode_one(encode_frame({"type": MessageType.RESULT, "request_id": "r"}))
    assert frame.type == MessageType.RESULT == "result"
    assert type(frame.header["type"]) is str


def test_encode_frame_needs_a_string_type() -> None:
    for header in ({}, {"type": 1}, {"type": None}, {"kind": "ready"}):
        with pytest.raises(ValueError, match="type"):
            encode_frame(header)


def test_encode_frame_refuses_a_header_no_reader_accepts() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        encode_frame({"type": "x", "blob": "a" * MAX_HEADER_BYTES})


#: What a header's values may be: the plain ones the direct path writes, and everything it must leave to json.
_HEADER_VALUES = st.one_of(
    st.none(), st.integers(), st.booleans(), st.floats(allow_nan=True),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)),  # plain, unless a quote or backslash
    st.text(), st.sampled_from(['"', "\\", "\x7f", "\n", "\u2028", "\ud800", "é", "a\"b", "a\\b"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _header_bytes(header: dict[str, Any]) -> bytes | str:
    """The header bytes encode_frame writes for ``header``, or the name of the error it raises."""
    try:
        frame = encode_frame(header)
    except (ValueError, TypeError) as error:
        return type(error).__name__
    header_length = int.from_bytes(frame[4:8], "big")
    return frame[PREFIX_BYTES:PREFIX_BYTES + header_length]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.one_of(st.sampled_from(["request_id", "trace_id", "deadline_ms"]), st.text(max_size=4),
                                 st.integers(), st.none()),
                       _HEADER_VALUES, max_size=6))
def test_a_header_is_written_exactly_as_the_json_encoder_writes_it(fields: dict[str, Any]) -> None:
    """The direct path for plain headers (protocol._encode_header) against json's own encoder, whatever the keys
    and values: the same bytes, or the same error."""
    fields.pop("type", None)  # a frame's type must be a string: encode_frame's own check, tested above
    header = {"type": "invoke", **fields}
    try:
        expected: bytes | str = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (ValueError, TypeError) as error:
        expected = type(error).__name__
    if isinstance(expected, bytes) and len(expected) > MAX_HEADER_BYTES:
        expected = "ValueError"
    assert _header_bytes(header) == expected


def test_the_headers_on_every_invocations_path_take_the_direct_path() -> None:
    """An invoke frame and a result frame as Lambda's ids make them: plain, so written without the encoder."""
    invoke = InvokeMessage("8476a536-e9f4-11e8-9739-2dfe598c3fcd", 1542409706888,
                           "arn:aws:lambda:us-east-1:123456789012:function:f",
                           "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1")
    result = ResultMessage("8476a536-e9f4-11e8-9739-2dfe598c3fcd", BYTES_CONTENT_TYPE)
    for frame in (invoke.encode(b"{}"), result.encode(b"{}")):
        header = decode_one(frame).header
        with mock.patch.object(protocol, "_HEADER_ENCODER") as encoder:
            assert encode_frame(header, b"{}") == frame
        encoder.encode.assert_not_called()


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)


def _loads_outcome(loads: Any, text: str) -> object:
    """What ``loads`` returns for ``text`` (as its JSON, so that NaN compares equal), or its error's type and
    message."""
    try:
        return ("value", json.dumps(loads(text)))
    except (ValueError, RecursionError) as error:
        return (type(error).__name__, str(error))


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    _JSON_VALUES.map(lambda value: json.dumps(value, separators=(",", ":"), ensure_ascii=False)),
    st.tuples(_JSON_VALUES, st.sampled_from(["", " ", "\n", " x", ",1", "}"]), st.sampled_from(["", " ", "\t"]))
    .map(lambda parts: parts[2] + json.dumps(parts[0]) + parts[1]),
    st.text(max_size=12),
    st.sampled_from(["", " ", "[" * 5000, "NaN", "-Infinity", '{"a":1}{"b":2}', '"\\ud800"', "1e999", "01"]),
))
def test_json_is_read_exactly_as_json_loads_reads_it(text: str) -> None:
    """The scanner's direct path (protocol.json_loads: frame headers, events) against json.loads: the same value,
    or the same error with the same message, for whole values, values with whitespace or garbage around them and
    arbitrary text, as text and as bytes in each encoding json.loads detects (a BOM too)."""
    assert _loads_outcome(json_loads, text) == _loads_outcome(json.loads, text)
    for encoding in ("utf-8", "utf-8-sig", "utf-16", "utf-32-be"):  # as bytes: each encoding json.loads detects
        with contextlib.suppress(UnicodeEncodeError):  # a lone surrogate has no UTF-8
            data = text.encode(encoding)
            assert _loads_outcome(json_loads, data) == _loads_outcome(json.loads, data)


# -- chunking --------------------------------------------------------------------------------------------------


def test_the_encoding_of_json_bytes_is_detected_as_json_detects_it() -> None:
    """The shortcut for text that can only be UTF-8 answers as ``json.detect_encoding`` does, for every start made of
    the bytes that matter to it (zero, the byte order marks' bytes) and a few others, up to five bytes long."""
    alphabet = [0x00, 0x01, 0x20, 0x7B, 0xBB, 0xBF, 0xEF, 0xFE, 0xFF]
    starts = [bytes(start) for length in range(6) for start in itertools.product(alphabet, repeat=length)]
    expected = [json.detect_encoding(start) for start in starts]
    assert [_encoding(start) for start in starts] == expected
    assert [_encoding(memoryview(start)) for start in starts] == expected  # a large event in the region is a view


def test_frames_fed_one_byte_at_a_time() -> None:
    frames = [
        encode_frame({"type": "a"}, b""),
        encode_frame({"type": "b", "n": 1}, bytes(range(256))),
        encode_frame({"type": "c"}, b"xyz"),
    ]
    stream = b"".join(frames)
    ends = {sum(len(f) for f in frames[: i + 1]) for i in range(len(frames))}
    decoder = FrameDecoder()
    received: list[Frame] = []
    frame_start = 0
    for offset in range(len(stream)):
        out = decoder.feed(stream[offset : offset + 1])
        # a frame comes out exactly when its last byte goes in, never earlier
        if offset + 1 in ends:
            assert len(out) == 1
            frame_start = offset + 1
        else:
            assert out == []
        received += out
        assert decoder.pending_bytes == offset + 1 - frame_start
    assert [f.type for f in received] == ["a", "b", "c"]
    assert received[1].payload == bytes(range(256))
    assert received[2].payload == b"xyz"


def test_several_frames_in_one_chunk() -> None:
    stream = b"".join(encode_frame({"type": "t", "i": i}, str(i).encode() * i) for i in range(20))
    decoder = FrameDecoder()
    frames = decoder.feed(stream)
    assert [f.header["i"] for f in frames] == list(range(20))
    assert [f.payload for f in frames] == [str(i).encode() * i for i in range(20)]
    assert decoder.pending_bytes == 0


def test_complete_frames_and_a_partial_one_in_one_chunk() -> None:
    first, second = encode_frame({"type": "a"}, b"1"), encode_frame({"type": "b"}, b"22")
    decoder = FrameDecoder()
    assert [f.type for f in decoder.feed(first + second[:5])] == ["a"]
    assert decoder.pending_bytes == 5
    assert [f.payload for f in decoder.feed(second[5:])] == [b"22"]
    assert decoder.pending_bytes == 0


def test_pending_bytes_counts_a_truncated_frame() -> None:
    data = encode_frame({"type": "result", "request_id": "r"}, b"x" * 100)
    decoder = FrameDecoder()
    assert decoder.pending_bytes == 0
    assert decoder.feed(data[:-3]) == []
    assert decoder.pending_bytes == len(data) - 3
    assert decoder.feed(b"") == []
    assert decoder.pending_bytes == len(data) - 3
    (frame,) = decoder.feed(data[-3:])
    assert frame.payload == b"x" * 100
    assert decoder.pending_bytes == 0


# -- refusals --------------------------------------------------------------------------------------------------


def test_bad_magic_is_refused() -> None:
    with pytest.raises(FrameError, match="prefix"):
        FrameDecoder().feed(raw_frame(b'{"type":"x"}', magic=b"HTTP"))


def test_bad_magic_is_refused_after_a_good_frame() -> None:
    decoder = FrameDecoder()
    good = encode_frame({"type": "a"})
    with pytest.raises(FrameError):
        decoder.feed(good + b"GET / HTTP/1.1\r\n\r\n")


def test_bad_magic_is_refused_as_soon_as_the_prefix_is_in() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"LSF2" + bytes(7)) == []
    with pytest.raises(FrameError):
        decoder.feed(bytes(1))


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"type": "x"', id="truncated-json"),
        pytest.param(b'["type", "x"]', id="array"),
        pytest.param(b'"type"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"{}", id="no-type"),
        pytest.param(b'{"type": 1}', id="int-type"),
        pytest.param(b'{"type": null}', id="null-type"),
        pytest.param(b'{"type": ["x"]}', id="list-type"),
        pytest.param(b"[" * 60_000, id="deep-nesting"),
        pytest.param(b'{"a":' * 10_000 + b"1" + b"}" * 10_000, id="deep-objects"),
    ],
)
def test_bad_header_is_refused(header: bytes) -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameError) as excinfo:
        decoder.feed(raw_frame(header, b"payload"))
    assert not isinstance(excinfo.value, FrameTooLarge)


def test_oversized_header_is_refused_from_the_prefix_alone() -> None:
    decoder = FrameDecoder(max_header_bytes=100)
    prefix = PREFIX.pack(MAGIC, 101, 0)
    assert decoder.feed(prefix[:11]) == []
    assert decoder.pending_bytes == 11
    with pytest.raises(FrameTooLarge) as excinfo:
        decoder.feed(prefix[11:])  # the 12th byte: nothing of the header has arrived
    assert excinfo.value.part == "header"
    assert excinfo.value.size == 101
    assert excinfo.value.limit == 100
    assert isinstance(excinfo.value, FrameError)
    assert decoder.pending_bytes == 0


def test_oversized_payload_is_refused_from_the_prefix_alone() -> None:
    decoder = FrameDecoder(max_payload_bytes=1024)
    with pytest.raises(FrameTooLarge) as excinfo:
        decoder.feed(PREFIX.pack(MAGIC, 12, 0xFFFFFFFF))
    assert excinfo.value.part == "payload"
    assert excinfo.value.size == 0xFFFFFFFF
    assert excinfo.value.limit == 1024
    assert "4294967295" in str(excinfo.value)


def test_default_limits_refuse_a_lying_length() -> None:
    with pytest.raises(FrameTooLarge) as excinfo:
        FrameDecoder().feed(PREFIX.pack(MAGIC, MAX_HEADER_BYTES + 1, 0))
    assert excinfo.value.limit == MAX_HEADER_BYTES


def test_limits_are_inclusive() -> None:
    header = b'{"type":"x"}'
    frame = decode_one(raw_frame(header, b"p" * 64), max_header_bytes=len(header), max_payload_bytes=64)
    assert frame.payload == b"p" * 64


def test_decoder_refuses_further_input_after_an_error() -> None:
    decoder = FrameDecoder(max_payload_bytes=10)
    with pytest.raises(FrameTooLarge) as first:
        decoder.feed(PREFIX.pack(MAGIC, 12, 11))
    with pytest.raises(FrameTooLarge) as second:
        decoder.feed(encode_frame({"type": "ok"}))  # a perfectly good frame, but the stream is out of sync
    assert second.value is first.value
    with pytest.raises(FrameError):
        decoder.feed(b"")
    assert decoder.pending_bytes == 0


def test_frames_before_an_error_in_the_same_chunk_are_lost_with_the_stream() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameError):
        decoder.feed(encode_frame({"type": "a"}) + raw_frame(b"[]"))
    with pytest.raises(FrameError):
        decoder.feed(encode_frame({"type": "b"}))


# -- properties ------------------------------------------------------------------------------------------------

SMALL_HEADER = 256
SMALL_PAYLOAD = 1024
BUFFER_BOUND = PREFIX.size + SMALL_HEADER + SMALL_PAYLOAD

# Pieces of a hostile stream: good frames, frames that are too large, bad headers, prefixes with random lengths,
# and plain noise, so that random input gets past the magic check often enough to mean something.
_piece = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda p: encode_frame({"type": "ok"}, p), st.binary(max_size=SMALL_PAYLOAD)),
    st.builds(lambda p: encode_frame({"type": "big"}, p), st.binary(min_size=SMALL_PAYLOAD + 1,
                                                                     max_size=SMALL_PAYLOAD + 64)),
    st.builds(raw_frame, st.binary(max_size=40), st.binary(max_size=40)),
    st.builds(lambda h, p: PREFIX.pack(MAGIC, h, p),
              st.integers(0, 2**32 - 1) | st.integers(0, SMALL_HEADER + 1),
              st.integers(0, 2**32 - 1) | st.integers(0, SMALL_PAYLOAD + 1)),
)


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(_piece, max_size=6), cuts=st.lists(st.integers(0, 4000), max_size=12))
def test_any_bytes_in_any_chunking_give_frames_or_a_frame_error(pieces: list[bytes], cuts: list[int]) -> None:
    decoder = FrameDecoder(max_payload_bytes=SMALL_PAYLOAD, max_header_bytes=SMALL_HEADER)
    failed = False
    for chunk in split_at(b"".join(pieces), cuts):
        try:
            frames = decoder.feed(chunk)
        except FrameError:  # anything else propagates and fails the test
            failed = True
            break
        for frame in frames:
            assert isinstance(frame, Frame)
            assert isinstance(frame.header, dict)
            assert isinstance(frame.type, str)
            assert len(frame.payload) <= SMALL_PAYLOAD
        assert decoder.pending_bytes < BUFFER_BOUND
    if failed:
        with pytest.raises(FrameError):
            decoder.feed(encode_frame({"type": "ok"}))


_json_scalar = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=20) | st.floats(
    allow_nan=False, allow_infinity=False
)
_json_value = st.recursive(
    _json_scalar,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=6,
)
_header = st.builds(
    lambda fields, kind: {**fields, "type": kind},
    st.dictionaries(st.text(max_size=10), _json_value, max_size=3),
    st.text(max_size=20),
)


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.tuples(_header, st.binary(max_size=300)), min_size=1, max_size=3),
    cuts=st.lists(st.integers(0, 3000), max_size=10),
    as_views=st.booleans(),
)
def test_any_header_and_payload_round_trip_in_any_chunking(
    messages: list[tuple[dict[str, Any], bytes]], cuts: list[int], as_views: bool
) -> None:
    """``as_views``: each chunk is fed as a view of a buffer that is then overwritten, as ``read_from`` reuses its
    read buffer: whatever the decoder keeps of a chunk, it must have copied."""
    stream = b"".join(encode_frame(header, payload) for header, payload in messages)
    decoder = FrameDecoder(max_payload_bytes=SMALL_PAYLOAD)
    frames: list[Frame] = []
    for chunk in split_at(stream, cuts):
        if not as_views:
            frames += decoder.feed(chunk)
            continue
        buffer = bytearray(chunk)
        with memoryview(buffer) as view:
            frames += decoder.feed(view)
        buffer[:] = b"\xff" * len(buffer)
    assert decoder.pending_bytes == 0
    # compare through JSON: what was sent is what a JSON reader of the header would get (-0.0 == 0.0 and so on)
    assert [(json.dumps(f.header, sort_keys=True), f.payload) for f in frames] == [
        (json.dumps(h, sort_keys=True), p) for h, p in messages
    ]


# -- messages --------------------------------------------------------------------------------------------------


def frame_of(data: bytes) -> Frame:
    decoder = FrameDecoder()
    (frame,) = decoder.feed(data)
    assert decoder.pending_bytes == 0
    return frame


_optional_text = st.none() | st.text(max_size=40)
_invoke_messages = st.builds(
    InvokeMessage, st.text(max_size=40), st.integers(0, 2**53), st.text(max_size=40), _optional_text, _optional_text,
    _optional_text, _optional_text, st.none() | st.integers(0, 2**53), region_bytes=st.none(),
)


@settings(max_examples=200, deadline=None)
@given(message=_invoke_messages, body=st.binary(max_size=100))
def test_an_invoke_message_parses_back_as_built(message: InvokeMessage, body: bytes) -> None:
    frame = frame_of(message.encode(body))
    assert frame.type == MessageType.INVOKE
    parsed = InvokeMessage.parse(frame)
    assert isinstance(parsed, InvokeMessage)
    assert (parsed, frame.payload) == (message, body)


@settings(max_examples=200, deadline=None)
@given(request_id=st.text(max_size=40), content_type=st.sampled_from(sorted({"application/json", BYTES_CONTENT_TYPE})),
       error_type=st.text(max_size=20), fatal=st.booleans(), cause=_json_value)
def test_every_reply_parses_back_as_built(request_id: str, content_type: str, error_type: str, fatal: bool,
                                          cause: Any) -> None:
    result = ResultMessage(request_id, content_type)
    parsed_result = parse_reply(frame_of(result.encode(b"r")))
    assert isinstance(parsed_result, ResultMessage) and parsed_result == result
    error = ErrorMessage(request_id, error_type, fatal, cause)
    parsed = parse_reply(frame_of(error.encode(b"{}")))
    assert isinstance(parsed, ErrorMessage)
    assert (parsed.request_id, parsed.error_type, parsed.fatal) == (request_id, error_type, fatal)
    assert json.dumps(parsed.xray_cause) == json.dumps(cause)  # as JSON data: -0.0 and 0.0 are one number


def test_a_json_result_costs_the_header_no_content_type() -> None:
    assert frame_of(ResultMessage("r").encode(b"{}")).header == {"type": "result", "request_id": "r"}


def test_startup_messages_parse_back_as_built() -> None:
    ready = parse_startup(frame_of(ReadyMessage(42).encode()))
    assert isinstance(ready, ReadyMessage) and ready.pid == 42 and ready.leftovers.fork_safe
    ready = parse_startup(frame_of(ReadyMessage(42, InitLeftovers(open_sockets=2, extra_threads=1)).encode()))
    assert ready == ReadyMessage(42, InitLeftovers(2, 1)) and not ready.leftovers.fork_safe
    assert ReadyMessage.parse(frame_of(ReadyMessage(7, InitLeftovers(MAX_INIT_LEFTOVERS, 0)).encode())).pid == 7
    frame = frame_of(InitErrorMessage().encode(b'{"errorType": "E", "errorMessage": "m"}'))
    assert isinstance(parse_startup(frame), InitErrorMessage)


@pytest.mark.parametrize(
    ("header", "detail", "request_id"),
    [
        pytest.param({"type": "result"}, "reply for request None", None, id="no-request-id"),
        pytest.param({"type": "error", "request_id": 7}, "reply for request 7", None, id="int-request-id"),
        pytest.param({"type": "ready", "request_id": "r"}, "unexpected 'ready' frame", "r", id="not-a-reply"),
        pytest.param({"type": "result", "request_id": "r", "content_type": "text/html"}, "unknown content type", "r",
                     id="unknown-content-type"),
        pytest.param({"type": "result", "request_id": "r", "content_type": None}, "unknown content type", "r",
                     id="null-content-type"),
        pytest.param({"type": "error", "request_id": "r", "fatal": "yes"}, "fatal", "r", id="string-fatal"),
        pytest.param({"type": "error", "request_id": "r", "error_type": ["E"]}, "error_type", "r",
                     id="list-error-type"),
    ],
)
def test_a_malformed_reply_is_refused_naming_the_request_it_claims(header: dict[str, Any], detail: str,
                                                                   request_id: str | None) -> None:
    with pytest.raises(InvalidMessage, match=detail) as refused:
        parse_reply(frame_of(encode_frame(header)))
    assert refused.value.request_id == request_id


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        pytest.param({"type": "result", "request_id": "r"}, "Worker sent 'result' instead of ready", id="result"),
        pytest.param({"type": "ready"}, "integer pid", id="no-pid"),
        pytest.param({"type": "ready", "pid": "1"}, "integer pid", id="string-pid"),
        *[pytest.param({"type": "ready", "pid": 1, "open_sockets": 0, "extra_threads": 0, **lie}, "integer counts",
                       id=f"{name}-leftovers") for name, lie in (
            ("missing", {"extra_threads": None}), ("string", {"open_sockets": "1"}), ("bool", {"open_sockets": True}),
            ("float", {"extra_threads": 1.0}), ("negative", {"open_sockets": -1}),
            ("oversized", {"extra_threads": MAX_INIT_LEFTOVERS + 1}), ("huge", {"open_sockets": 10**30}))],
    ],
)
def test_a_malformed_startup_message_is_refused(header: dict[str, Any], detail: str) -> None:
    with pytest.raises(InvalidMessage, match=detail):
        parse_startup(frame_of(encode_frame(header)))


@pytest.mark.parametrize(
    "header",
    [
        {"type": "result", "request_id": "r", "deadline_ms": 1},
        {"type": "invoke", "deadline_ms": 1},
        {"type": "invoke", "request_id": "r"},
        {"type": "invoke", "request_id": "r", "deadline_ms": "1"},
        {"type": "invoke", "request_id": "r", "deadline_ms": True},
        {"type": "invoke", "request_id": "r", "deadline_ms": 1, "trace_id": 5},
        {"type": "invoke", "request_id": "r", "deadline_ms": 1, "soft_deadline_ms": 1.5},
    ],
)
def test_a_malformed_invoke_message_is_refused(header: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessage):
        InvokeMessage.parse(frame_of(encode_frame(header)))


@settings(max_examples=300, deadline=None)
@given(header=_header | st.builds(lambda fields, kind: {**fields, "type": kind},
                                  st.dictionaries(st.sampled_from(["request_id", "pid", "content_type", "fatal",
                                                                   "error_type", "deadline_ms", "xray_cause"]),
                                                  _json_value, max_size=4),
                                  st.sampled_from(MESSAGE_TYPES)))
def test_a_parser_answers_any_header_with_a_message_or_invalid_message(header: dict[str, Any]) -> None:
    frame = frame_of(encode_frame(header))
    for parse in (parse_reply, parse_startup, InvokeMessage.parse):
        with contextlib.suppress(InvalidMessage):
            parse(frame)


def test_fork_control_messages_parse_back_as_built() -> None:
    assert isinstance(ForkRequest.parse(ForkRequest().encode()), ForkRequest)
    forked = parse_fork_reply(ForkedMessage(1234).encode())
    assert isinstance(forked, ForkedMessage) and forked.pid == 1234
    failed = parse_fork_reply(ForkFailedMessage("OSError(12)").encode())
    assert isinstance(failed, ForkFailedMessage) and failed.error == "OSError(12)"


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[]", b'{"type": "forked"}', b'{"type": "forked", "pid": 1}', b'{"type": "forked", "pid": "9"}',
     b'{"type": "fork_failed"}', b'{"type": "fork"}', b"[" * 100_000],
)
def test_a_malformed_fork_reply_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidMessage):
        parse_fork_reply(data)
