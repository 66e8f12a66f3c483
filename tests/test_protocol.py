"""The frame protocol on its own: round trips, arbitrary chunking, and every way a stream can be refused."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_supervisor.shared.protocol import (
    MAGIC,
    MAX_HEADER_BYTES,
    PREFIX,
    Frame,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    MessageType,
    encode_frame,
)


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
    assert PREFIX.size == 12
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


# -- chunking --------------------------------------------------------------------------------------------------


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
)
def test_any_header_and_payload_round_trip_in_any_chunking(
    messages: list[tuple[dict[str, Any], bytes]], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(header, payload) for header, payload in messages)
    decoder = FrameDecoder(max_payload_bytes=SMALL_PAYLOAD)
    frames: list[Frame] = []
    for chunk in split_at(stream, cuts):
        frames += decoder.feed(chunk)
    assert decoder.pending_bytes == 0
    # compare through JSON: what was sent is what a JSON reader of the header would get (-0.0 == 0.0 and so on)
    assert [(json.dumps(f.header, sort_keys=True), f.payload) for f in frames] == [
        (json.dumps(h, sort_keys=True), p) for h, p in messages
    ]
