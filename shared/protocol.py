"""The wire protocol between the supervisor and the worker: length-prefixed frames and the messages they carry.

A frame is plain data, so that the supervisor reads whatever the (untrusted) worker writes without executing it
and without being made to allocate without bound:

    prefix  = MAGIC (4 bytes) | header length (uint32, big-endian) | payload length (uint32, big-endian)
    header  = a UTF-8 JSON object with a string field "type"
    payload = raw bytes (an event, an encoded result, a JSON error object)

A large event or result crosses the worker's shared-memory region instead (shared/payload_region.py): its frame
has an empty payload and says ``region_bytes``, which the supervisor checks against the region's size.

Both lengths are checked against the reader's limits as soon as the prefix is in. Each message type has one
builder (``encode``) and one parser (``parse``, which validates every field) here; nothing else touches a header.
The fork template's control messages (JSON datagrams beside the frames) are here too.
"""

from __future__ import annotations

import _signal as signal  # not signal.py: its enums cost every start (shared/signal_names.py)
import json
import mmap
import os
from json.scanner import make_scanner

from .errors import error_object
from .worker_env import LAMBDA_RESPONSE_LIMIT_BYTES as LAMBDA_RESPONSE_LIMIT_BYTES  # where it was defined first
from .worker_env import frame_payload_limit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from enum import StrEnum as _Names
    from typing import Any, NamedTuple
else:
    from .named_tuple import NamedTuple

    _Names = object  # mypy reads enums; at run time plain str constants (an enum class costs ~0.1 ms at start)

MAGIC = b"LSF1"
#: Sent by the supervisor to a worker it is about to kill at the deadline: the worker dumps its threads' stacks.
STACK_DUMP_SIGNAL = signal.SIGUSR2
#: MAGIC, then the header's and the payload's lengths as big-endian uint32s (int.to_bytes and from_bytes, not
#: ``struct``: one import less at every worker's start).
PREFIX_BYTES = 12
MAX_UINT32 = 0xFFFF_FFFF
MAX_HEADER_BYTES = 64 * 1024
#: Bytes taken from a pipe per read, into a buffer kept for the next read: allocating a fresh 1 MiB ``bytes`` for
#: every read costs an mmap, an mremap and a munmap per invocation, even for a 200-byte frame. An anonymous mapping,
#: not a ``bytearray`` (which is zeroed, so all resident at once): only the pages a read has reached are memory.
READ_BUFFER_BYTES = 1 << 20

#: Default bound on a worker's payload: Lambda's response limit plus a margin for an error object's stack trace.
DEFAULT_MAX_PAYLOAD_BYTES = frame_payload_limit(LAMBDA_RESPONSE_LIMIT_BYTES)


class MessageType(_Names):
    """The ``type`` of a frame header, by direction (each has its message class below)."""

    # worker -> supervisor
    READY = "ready"
    INIT_ERROR = "init_error"
    RESULT = "result"
    ERROR = "error"
    # supervisor -> worker
    INVOKE = "invoke"


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


#: Made once: ``json.dumps`` with options builds an encoder per call, a third of a small header's encoding time.
_HEADER_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _encode_header(header: dict[str, Any]) -> str:
    """The header as ``_HEADER_ENCODER`` writes it. Headers on every invocation's path hold only None, ints and
    plain strings (ASCII, printable, no quote or backslash: nothing to escape): those are written directly, at about
    half the encoder's cost in place (README); anything else goes to the encoder."""
    texts = list(header)  # the keys, and below the string values: checked at once for anything to escape
    parts = []
    for key, value in header.items():
        if value is None:
            parts.append(f'"{key}":null')
        elif type(value) is int:
            parts.append(f'"{key}":{value}')
        elif type(value) is str:
            parts.append(f'"{key}":"{value}"')
            texts.append(value)
        else:
            return _HEADER_ENCODER.encode(header)
    try:
        text = "".join(texts)
    except TypeError:  # a key that is not a string, which the encoder writes its own way
        return _HEADER_ENCODER.encode(header)
    if not (text.isascii() and text.isprintable()) or '"' in text or "\\" in text:
        return _HEADER_ENCODER.encode(header)
    return "{" + ",".join(parts) + "}"


def encode_frame(header: dict[str, Any], payload: bytes | memoryview = b"") -> bytes:
    """Serialise one frame. Raises ValueError if the header is too large to be accepted by any reader."""
    if not isinstance(header.get("type"), str):
        raise ValueError("a frame header needs a string 'type'")
    header_bytes = _encode_header(header).encode("utf-8")
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise ValueError(f"frame header of {len(header_bytes)} bytes exceeds {MAX_HEADER_BYTES} bytes")
    if len(payload) > MAX_UINT32:
        raise ValueError(f"frame payload of {len(payload)} bytes exceeds {MAX_UINT32} bytes")
    lengths = (len(header_bytes) << 32 | len(payload)).to_bytes(8, "big")
    return b"".join((MAGIC, lengths, header_bytes, payload))  # one copy


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
        self._read_buffer: mmap.mmap | None = None

    def read_from(self, fd: int) -> list[Frame] | None:
        """One ``read`` from ``fd`` (blocking or not, as the descriptor is), decoded; None at end of file.
        BlockingIOError from a non-blocking descriptor with nothing to read passes through."""
        if self._read_buffer is None:
            self._read_buffer = mmap.mmap(-1, READ_BUFFER_BYTES)
        count = os.readv(fd, [self._read_buffer])
        if count == 0:
            return None
        with memoryview(self._read_buffer) as view:
            return self.feed(view[:count])

    def feed(self, data: bytes | memoryview) -> list[Frame]:
        if self._failed is not None:
            raise self._failed
        frames: list[Frame] = []
        source: bytes | bytearray | memoryview = data
        try:
            if self._buffer:  # the rest of a frame begun in an earlier read
                self._buffer += data
                source = self._buffer
            at = 0
            while (cut := self._cut_frame(source, at)) is not None:
                frame, at = cut
                frames.append(frame)
            if source is self._buffer:
                del self._buffer[:at]
            elif at < len(source):
                self._buffer += source[at:]
        except FrameError as error:
            self._failed = error
            self._buffer.clear()
            raise
        return frames

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame still waiting for the rest (nonzero at EOF means a truncated frame)."""
        return len(self._buffer)

    def _cut_frame(self, data: bytes | bytearray | memoryview, at: int) -> tuple[Frame, int] | None:
        """The frame that starts at ``at`` in ``data`` and where it ends, or None if it is not all there yet. Cut
        from whatever holds it: a read that brings whole frames (nearly every one) is never copied into the
        buffer."""
        if len(data) - at < PREFIX_BYTES:
            return None
        if data[at:at + 4] != MAGIC:
            raise FrameError(f"bad frame prefix {bytes(data[at:at + PREFIX_BYTES])!r}")
        lengths = int.from_bytes(data[at + 4:at + PREFIX_BYTES], "big")
        header_len, payload_len = lengths >> 32, lengths & MAX_UINT32
        if header_len > self.max_header_bytes:
            raise FrameTooLarge("header", header_len, self.max_header_bytes)
        if payload_len > self.max_payload_bytes:
            raise FrameTooLarge("payload", payload_len, self.max_payload_bytes)
        payload_at = at + PREFIX_BYTES + header_len
        end = payload_at + payload_len
        if len(data) < end:
            return None
        header = _parse_header(bytes(data[at + PREFIX_BYTES:payload_at]))
        return Frame(header, bytes(data[payload_at:end])), end


#: json's own scanner, as ``json.loads`` runs it: what it returns for a whole text is what ``json.loads`` returns.
_SCAN_JSON = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # typeshed: a decoder is what it takes


def json_loads(data: str | bytes) -> Any:
    """``json.loads(data)``, exactly: the same value or the same error. A text that is one JSON value from its first
    character to its last (every frame header, most events) goes to json's scanner straight away, skipping
    json.loads' own steps: in place, in a worker just woken, that is about a third less (README). Anything else
    (whitespace around the value, an error) is handed to ``json.loads`` as it came. Used for frame headers and, in
    the worker, for events."""
    text = data if isinstance(data, str) else json_text(data)
    try:
        value, end = _SCAN_JSON(text, 0)
    except StopIteration:
        return json.loads(data)
    if end != len(text):
        return json.loads(data)
    return value


#: What may begin a byte order mark, or a UTF-16 or UTF-32 text (a zero byte): bytes that start otherwise, and have
#: no zero byte second, are UTF-8 to ``json.detect_encoding``.
_NOT_UTF8_STARTS = (b"\x00", b"\xef", b"\xfe", b"\xff")


def json_text(data: bytes | memoryview) -> str:
    """The text ``json.loads`` reads from these bytes: the encoding it detects, lone surrogates passed through. A
    view (a large event in the worker's region) is decoded where it is, without a copy of its bytes first."""
    return str(data, _encoding(data), "surrogatepass")


def _encoding(data: bytes | memoryview) -> str:
    """``json.detect_encoding(data)``, without its steps for the usual event (README: what that is worth). It looks
    at four bytes at most, which are all it is given."""
    if data[:1] not in _NOT_UTF8_STARTS and data[1:2] != b"\x00":
        return "utf-8"
    return json.detect_encoding(bytes(data[:4]))


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json_loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FrameError(f"frame header is not UTF-8 JSON: {error}") from None
    except RecursionError:
        raise FrameError("frame header nests too deeply") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise FrameError("frame header must be a JSON object with a string 'type'")
    return header


# -- messages ---------------------------------------------------------------------------------------------------
# Each message is an immutable NamedTuple: on the path of every invocation, building one costs a quarter of what a
# frozen dataclass does.


class InvalidMessage(FrameError):
    """A well-formed frame that is not a valid message of the kind expected. ``request_id`` is the one its header
    named, when that was a string (a reply meant for another request is told apart from garbage with it)."""

    def __init__(self, detail: str, request_id: str | None = None) -> None:
        super().__init__(detail)
        self.request_id = request_id


def _optional_text(header: dict[str, Any], name: str) -> str | None:
    value = header.get(name)
    if value is None or type(value) is str:
        return value
    raise InvalidMessage(f"{name} is not a string", _request_id(header))


def _request_id(header: dict[str, Any]) -> str | None:
    request_id = header.get("request_id")
    return request_id if type(request_id) is str else None


class InvokeMessage(NamedTuple):
    """Supervisor -> worker: one event's metadata, from which the worker builds ``context``; the payload is the raw
    event body."""

    request_id: str
    deadline_ms: int
    invoked_function_arn: str = ""
    trace_id: str | None = None
    client_context: str | None = None
    cognito_identity: str | None = None
    tenant_id: str | None = None
    #: When the worker raises its soft timeout in the handler (epoch ms); None: no soft timeout.
    soft_deadline_ms: int | None = None
    #: Set when the event body is in the worker's shared-memory region (its first ``region_bytes`` bytes) rather
    #: than in the frame's payload, which is then empty.
    region_bytes: int | None = None
    #: The CPU the worker waits on after this event, once the supervisor has moved the hand-off's home away from a
    #: CPU something else keeps busy (supervisor/cpu_home.py); None: the home it was started with.
    home_cpu: int | None = None

    def encode(self, body: bytes | memoryview) -> bytes:
        """The frame; raises ValueError when the metadata is over the header bound (a huge client context)."""
        header: dict[str, Any] = {
            "type": MessageType.INVOKE,
            "request_id": self.request_id,
            "deadline_ms": self.deadline_ms,
            "invoked_function_arn": self.invoked_function_arn,
        }
        for name, value in zip(self._fields[3:], self[3:], strict=True):  # the optional ones, after the arn
            if value is not None:  # absent means None (``parse``): most are, on most events
                header[name] = value
        return encode_frame(header, body)

    @classmethod
    def parse(cls, frame: Frame) -> InvokeMessage:
        header = frame.header
        request_id, deadline_ms, soft_deadline_ms = header.get("request_id"), header.get("deadline_ms"), header.get(
            "soft_deadline_ms")
        home_cpu = header.get("home_cpu")
        if (header["type"] != MessageType.INVOKE or type(request_id) is not str or type(deadline_ms) is not int
                or (soft_deadline_ms is not None and type(soft_deadline_ms) is not int)
                or (home_cpu is not None and (type(home_cpu) is not int or home_cpu < 0))):
            raise InvalidMessage("not an invoke frame with a string request_id, integer deadlines and CPU")
        return cls(request_id, deadline_ms, _optional_text(header, "invoked_function_arn") or "",
                   _optional_text(header, "trace_id"), _optional_text(header, "client_context"),
                   _optional_text(header, "cognito_identity"), _optional_text(header, "tenant_id"), soft_deadline_ms,
                   _region_bytes(frame, request_id), home_cpu)


#: Above any count of InitLeftovers a worker reports (it caps its own): a ready frame with more is refused.
MAX_INIT_LEFTOVERS = 1 << 16


class InitLeftovers(NamedTuple):
    """What the user's init left behind that a fork of its process would share or lose: sockets open beyond the
    worker's own descriptors, and threads besides the main one (worker/init_leftovers.py counts them)."""

    open_sockets: int = 0
    extra_threads: int = 0

    @property
    def fork_safe(self) -> bool:
        return self.open_sockets == 0 and self.extra_threads == 0


class ReadyMessage(NamedTuple):
    """Worker -> supervisor: the user's init is done, and what it left behind (no payload)."""

    pid: int
    leftovers: InitLeftovers = InitLeftovers()

    def encode(self) -> bytes:
        return encode_frame({"type": MessageType.READY, "pid": self.pid, **self.leftovers._asdict()})

    @classmethod
    def parse(cls, frame: Frame) -> ReadyMessage:
        pid = frame.header.get("pid")
        if frame.type != MessageType.READY:
            raise InvalidMessage(f"{frame.type!r} frame is not a ready frame")
        if type(pid) is not int:
            raise InvalidMessage("ready frame without an integer pid")
        return cls(pid, InitLeftovers(*(_leftover_count(frame.header, name) for name in InitLeftovers._fields)))


def _leftover_count(header: dict[str, Any], name: str) -> int:
    count = header.get(name)
    if type(count) is not int or not 0 <= count <= MAX_INIT_LEFTOVERS:
        raise InvalidMessage(f"ready frame without integer counts of {' and '.join(InitLeftovers._fields)} "
                             f"from 0 to {MAX_INIT_LEFTOVERS}")
    return count


class InitErrorMessage(NamedTuple):
    """Worker -> supervisor: the user's init failed; the payload is the Lambda error object (``parse_error``)."""

    def encode(self, error_payload: bytes) -> bytes:
        return encode_frame({"type": MessageType.INIT_ERROR}, error_payload)

    @classmethod
    def parse(cls, frame: Frame) -> InitErrorMessage:
        if frame.type != MessageType.INIT_ERROR:
            raise InvalidMessage(f"{frame.type!r} frame is not an init_error frame")
        return cls()


def parse_startup(frame: Frame) -> ReadyMessage | InitErrorMessage:
    """What a starting worker sent: ready, or its init error. Raises InvalidMessage for anything else."""
    if frame.type == MessageType.INIT_ERROR:
        return InitErrorMessage.parse(frame)
    if frame.type != MessageType.READY:
        raise InvalidMessage(f"Worker sent {frame.type!r} instead of ready during init")
    return ReadyMessage.parse(frame)


class ResultMessage(NamedTuple):
    """Worker -> supervisor: the handler's result for ``request_id``; the payload is the encoded result, posted as
    ``content_type`` (one of RESULT_CONTENT_TYPES, absent from the header when it is JSON). With ``region_bytes``,
    the result is instead the first ``region_bytes`` bytes of the worker's shared-memory region, and the payload
    is empty."""

    request_id: str
    content_type: str = JSON_CONTENT_TYPE
    region_bytes: int | None = None

    def encode(self, payload: bytes) -> bytes:
        header: dict[str, Any] = {"type": MessageType.RESULT, "request_id": self.request_id}
        if self.content_type != JSON_CONTENT_TYPE:  # the usual case costs the frame nothing
            header["content_type"] = self.content_type
        if self.region_bytes is not None:
            header["region_bytes"] = self.region_bytes
        return encode_frame(header, payload)

    @classmethod
    def parse(cls, frame: Frame, region_size: int = 0) -> ResultMessage:
        """``region_size``: the size of the sender's region (0: it has none); a result said to be larger is a
        lie."""
        header = frame.header
        request_id = _reply_request_id(header, MessageType.RESULT)
        content_type = header.get("content_type", JSON_CONTENT_TYPE)
        if type(content_type) is not str or content_type not in RESULT_CONTENT_TYPES:
            raise InvalidMessage("result with an unknown content type", request_id)
        region_bytes = _region_bytes(frame, request_id)
        if region_bytes is not None and region_bytes > region_size:
            raise InvalidMessage(f"result of {region_bytes} bytes in a shared-memory region of {region_size} bytes",
                                 request_id)
        return cls(request_id, content_type, region_bytes)


class ErrorMessage(NamedTuple):
    """Worker -> supervisor: the invocation ``request_id`` failed; the payload is a Lambda error object
    (``parse_error``). ``fatal``: the worker must be replaced (a MemoryError). ``xray_cause`` is the worker's X-Ray
    cause document, JSON data not checked here: the post checks and bounds it (supervisor/xray_cause.py)."""

    request_id: str
    error_type: str = ""  # the payload's errorType, for readers of the header alone
    fatal: bool = False
    xray_cause: object = None

    def encode(self, error_payload: bytes) -> bytes:
        header = {"type": MessageType.ERROR, "request_id": self.request_id, "error_type": self.error_type,
                  "fatal": self.fatal}
        if self.xray_cause is not None:
            header["xray_cause"] = self.xray_cause
        return encode_frame(header, error_payload)

    @classmethod
    def parse(cls, frame: Frame) -> ErrorMessage:
        header = frame.header
        request_id = _reply_request_id(header, MessageType.ERROR)
        fatal = header.get("fatal", False)
        if type(fatal) is not bool:
            raise InvalidMessage("error frame's fatal is not a boolean", request_id)
        return cls(request_id, _optional_text(header, "error_type") or "", fatal, header.get("xray_cause"))


def _region_bytes(frame: Frame, request_id: str | None) -> int | None:
    """A frame's ``region_bytes``: None, or a non-negative integer with nothing in the frame's own payload."""
    size = frame.header.get("region_bytes")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise InvalidMessage("region_bytes is not a non-negative integer", request_id)
    if frame.payload:
        raise InvalidMessage("a payload both in the frame and in the shared-memory region", request_id)
    return size


def _reply_request_id(header: dict[str, Any], expected: MessageType) -> str:
    request_id = header.get("request_id")
    if type(request_id) is not str:
        raise InvalidMessage(f"reply for request {request_id!r}")
    if header["type"] != expected:
        raise InvalidMessage(f"unexpected {header['type']!r} frame", request_id)
    return request_id


def parse_reply(frame: Frame, region_size: int = 0) -> ResultMessage | ErrorMessage:
    """What a worker sent in answer to an invoke frame (``region_size``: that of its shared-memory region, 0 if it
    has none). Raises InvalidMessage for anything else."""
    if frame.header["type"] == MessageType.RESULT:
        return ResultMessage.parse(frame, region_size)
    return ErrorMessage.parse(frame)


def parse_error(payload: bytes) -> dict[str, Any]:
    """The Lambda error object of an ``error`` or ``init_error`` frame, validated, keeping only the fields Lambda
    knows. Raises InvalidMessage."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError) as error:
        raise InvalidMessage(f"error payload is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidMessage("error payload is not a JSON object")
    error_type, message, stack = data.get("errorType"), data.get("errorMessage"), data.get("stackTrace", [])
    if not isinstance(error_type, str) or not error_type or not isinstance(message, str):
        raise InvalidMessage("error payload lacks a string errorType and errorMessage")
    if not isinstance(stack, list) or not all(isinstance(line, str) for line in stack):
        raise InvalidMessage("error payload's stackTrace is not a list of strings")
    return error_object(error_type[:256], message, stack)


# -- the fork template's control messages (SOCK_SEQPACKET datagrams; the fork request carries two descriptors) -----


class ForkMessageType(_Names):
    FORK = "fork"  # supervisor -> template, with the new worker's two pipe ends
    FORKED = "forked"  # template -> supervisor
    FORK_FAILED = "fork_failed"  # template -> supervisor


#: The largest control message either side reads.
MAX_FORK_MESSAGE_BYTES = 4096


def _control_message(data: bytes) -> dict[str, Any]:
    try:
        message = json.loads(data[:MAX_FORK_MESSAGE_BYTES])
    except (ValueError, RecursionError):
        raise InvalidMessage("control message is not JSON") from None
    if not isinstance(message, dict):
        raise InvalidMessage("control message is not a JSON object")
    return message


class ForkRequest(NamedTuple):
    """Supervisor -> template: fork a worker on the two descriptors sent with this message."""

    def encode(self) -> bytes:
        return json.dumps({"type": ForkMessageType.FORK}).encode()

    @classmethod
    def parse(cls, data: bytes) -> ForkRequest:
        if _control_message(data).get("type") != ForkMessageType.FORK:
            raise InvalidMessage("not a fork request")
        return cls()


class ForkedMessage(NamedTuple):
    """Template -> supervisor: the worker ``pid`` was forked and is being adopted by the supervisor."""

    pid: int

    def encode(self) -> bytes:
        return json.dumps({"type": ForkMessageType.FORKED, "pid": self.pid}).encode()


class ForkFailedMessage(NamedTuple):
    """Template -> supervisor: the fork failed (``error``: the exception, for the log)."""

    error: str

    def encode(self) -> bytes:
        return json.dumps({"type": ForkMessageType.FORK_FAILED, "error": self.error}).encode()


def parse_fork_reply(data: bytes) -> ForkedMessage | ForkFailedMessage:
    """The template's answer to a fork request. Raises InvalidMessage."""
    message = _control_message(data)
    kind, pid, error = message.get("type"), message.get("pid"), message.get("error")
    if kind == ForkMessageType.FORKED and type(pid) is int and pid > 1:
        return ForkedMessage(pid)
    if kind == ForkMessageType.FORK_FAILED and type(error) is str:
        return ForkFailedMessage(error)
    raise InvalidMessage("not a forked or fork_failed message")
