"""Length-prefixed frames between the supervisor and the worker.

The worker runs untrusted code, so the supervisor must be able to read whatever arrives on the pipe without ever
executing it, and without being made to allocate without bound. A frame is therefore plain data:

    prefix  = MAGIC (4 bytes) | header length (uint32, big-endian) | payload length (uint32, big-endian)
    header  = a UTF-8 JSON object with at least a string field "type"
    payload = raw bytes (an event, a JSON result, a JSON error object)

Both lengths are checked against the reader's limits as soon as the 12-byte prefix is in, before anything is
buffered, so a lying length costs nothing. JSON is only ever parsed with ``json.loads``; nothing is unpickled or
evaluated in either direction.
"""

from __future__ import annotations

import json
import os
import signal
import struct
from enum import StrEnum
from typing import Any, NamedTuple

MAGIC = b"LSF1"
#: Sent by the supervisor to a worker it is about to kill at the deadline: the worker dumps its threads' stacks.
STACK_DUMP_SIGNAL = signal.SIGUSR2
PREFIX = struct.Struct(">4sII")
MAX_HEADER_BYTES = 64 * 1024
#: Bytes taken from a pipe per read, into a buffer kept for the next read: allocating a fresh 1 MiB ``bytes`` for
#: every read costs an mmap, an mremap and a munmap per invocation, even for a 200-byte frame.
READ_BUFFER_BYTES = 1 << 20

#: Lambda's limit for a synchronous response payload (6 MB as Lambda counts it).
LAMBDA_RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024
#: Default bound on a worker's payload: Lambda's response limit plus a margin for an error object's stack trace.
DEFAULT_MAX_PAYLOAD_BYTES = LAMBDA_RESPONSE_LIMIT_BYTES + 256 * 1024


class MessageType(StrEnum):
    """The ``type`` of a frame header, by direction."""

    # worker -> supervisor
    READY = "ready"  # init done; header: {"pid"}
    INIT_ERROR = "init_error"  # payload: a Lambda error object (JSON)
    RESULT = "result"  # header: {"request_id", "content_type"?}; payload: the encoded handler result
    ERROR = "error"  # header: {"request_id", "error_type", "fatal", "xray_cause"?}; payload: a Lambda error object
    # supervisor -> worker
    INVOKE = "invoke"  # header: the invocation's metadata; payload: the raw event body


#: The content types a ``result`` frame may name in its header's ``content_type`` (absent: JSON). The supervisor
#: posts the result with it, so it accepts nothing else: the worker is untrusted.
JSON_CONTENT_TYPE = "application/json"
BYTES_CONTENT_TYPE = "application/unknown"  # what awslambdaric posts a ``bytes`` result as
RESULT_CONTENT_TYPES = frozenset({JSON_CONTENT_TYPE, BYTES_CONTENT_TYPE})


class FrameError(Exception):
    """The byte stream is not a valid sequence of frames; the sender cannot be trusted to go on."""


class FrameTooLarge(FrameError):
    """A frame announced a header or payload above the reader's limit."""

    def __init__(self, part: str, size: int, limit: int) -> None:
        super().__init__(f"{part} of {size} bytes exceeds the limit of {limit} bytes")
        self.part = part
        self.size = size
        self.limit = limit


class Frame(NamedTuple):
    """One message: a small JSON header and opaque payload bytes."""

    header: dict[str, Any]
    payload: bytes = b""

    @property
    def type(self) -> str:
        return str(self.header["type"])


def encode_frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """Serialise one frame. Raises ValueError if the header is too large to be accepted by any reader."""
    if not isinstance(header.get("type"), str):
        raise ValueError("a frame header needs a string 'type'")
    header_bytes = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise ValueError(f"frame header of {len(header_bytes)} bytes exceeds {MAX_HEADER_BYTES} bytes")
    return PREFIX.pack(MAGIC, len(header_bytes), len(payload)) + header_bytes + payload


class FrameDecoder:
    """Incremental, bounded decoder: feed it whatever ``os.read`` returned, get back the complete frames.

    After it raises, the stream is out of sync for good and the decoder refuses further input.
    """

    def __init__(self, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.max_payload_bytes = max_payload_bytes
        self.max_header_bytes = max_header_bytes
        self._buffer = bytearray()
        self._failed: FrameError | None = None
        self._read_buffer: bytearray | None = None

    def read_from(self, fd: int) -> list[Frame] | None:
        """One ``read`` from ``fd`` (blocking or not, as the descriptor is), decoded; None at end of file.
        BlockingIOError from a non-blocking descriptor with nothing to read passes through."""
        if self._read_buffer is None:
            self._read_buffer = bytearray(READ_BUFFER_BYTES)
        count = os.readv(fd, [self._read_buffer])
        if count == 0:
            return None
        with memoryview(self._read_buffer) as view:
            return self.feed(view[:count])

    def feed(self, data: bytes | memoryview) -> list[Frame]:
        if self._failed is not None:
            raise self._failed
        self._buffer += data
        frames: list[Frame] = []
        try:
            while (frame := self._next_frame()) is not None:
                frames.append(frame)
        except FrameError as error:
            self._failed = error
            self._buffer.clear()
            raise
        return frames

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame still waiting for the rest (nonzero at EOF means a truncated frame)."""
        return len(self._buffer)

    def _next_frame(self) -> Frame | None:
        if len(self._buffer) < PREFIX.size:
            return None
        magic, header_len, payload_len = PREFIX.unpack_from(self._buffer)
        if magic != MAGIC:
            raise FrameError(f"bad frame prefix {bytes(self._buffer[:PREFIX.size])!r}")
        if header_len > self.max_header_bytes:
            raise FrameTooLarge("header", header_len, self.max_header_bytes)
        if payload_len > self.max_payload_bytes:
            raise FrameTooLarge("payload", payload_len, self.max_payload_bytes)
        end = PREFIX.size + header_len + payload_len
        if len(self._buffer) < end:
            return None
        header = _parse_header(bytes(self._buffer[PREFIX.size : PREFIX.size + header_len]))
        payload = bytes(self._buffer[PREFIX.size + header_len : end])
        del self._buffer[:end]
        return Frame(header, payload)


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FrameError(f"frame header is not UTF-8 JSON: {error}") from None
    except RecursionError:
        raise FrameError("frame header nests too deeply") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise FrameError("frame header must be a JSON object with a string 'type'")
    return header
