"""The X-Ray error cause sent with an error post in ``Lambda-Runtime-Function-XRay-Error-Cause``.

The document has awslambdaric's shape: ``{"working_directory", "exceptions": [{"message", "type", "stack":
[{"label", "path", "line"}]}], "paths"}``. The worker builds it from the exception's frames; the supervisor rebuilds
it from what the (untrusted) worker sent, keeping only fields of the right types, before it goes into a header.
:meth:`XRayCause.header_value` is always ASCII JSON without CR or LF, at most ``MAX_XRAY_CAUSE_BYTES`` long: strings
are cut to fixed lengths, then the oldest frames are dropped until it fits.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from .named_tuple import NamedTuple

#: The bound on the header's value; awslambdaric's is 1 MiB, far more than an HTTP header should carry.
MAX_XRAY_CAUSE_BYTES = 32 * 1024
#: awslambdaric's type for errors of the runtime's own making (an event or result it cannot handle).
VALIDATION_ERROR_TYPE = "LambdaValidationError"
_MAX_MESSAGE_CHARS = 2048
_MAX_TYPE_CHARS = 256
_MAX_LABEL_CHARS = 256
_MAX_PATH_CHARS = 1024
_MAX_FRAMES = 256


class StackFrame(NamedTuple):
    label: str
    path: str
    line: int

    def to_data(self) -> dict[str, Any]:
        return {"label": self.label, "path": self.path, "line": self.line}


class XRayCause(NamedTuple):
    """One exception's X-Ray cause: its type, message and frames (oldest first, as in a traceback)."""

    working_directory: str
    error_type: str
    message: str
    stack: tuple[StackFrame, ...] = ()

    def to_data(self) -> dict[str, Any]:
        exception = {"message": self.message, "type": self.error_type, "stack": [f.to_data() for f in self.stack]}
        paths = list(dict.fromkeys(frame.path for frame in self.stack))
        return {"working_directory": self.working_directory, "exceptions": [exception], "paths": paths}

    @classmethod
    def from_data(cls, data: object) -> XRayCause | None:
        """Read a document as :meth:`to_data` writes it; None unless every field has the right type."""
        if not isinstance(data, dict) or not isinstance(data.get("exceptions"), list) or len(data["exceptions"]) != 1:
            return None
        exception = data["exceptions"][0]
        directory = data.get("working_directory")
        if not isinstance(exception, dict) or not isinstance(directory, str):
            return None
        error_type, message, stack = exception.get("type"), exception.get("message"), exception.get("stack")
        if not isinstance(error_type, str) or not isinstance(message, str) or not isinstance(stack, list):
            return None
        frames = [_frame_from_data(each) for each in stack[-_MAX_FRAMES:]]
        if any(frame is None for frame in frames):
            return None
        return cls(directory, error_type, message, tuple(frame for frame in frames if frame is not None)).cut()

    def cut(self) -> XRayCause:
        """This cause with every string cut to its fixed bound and made valid Unicode (the frames are kept)."""
        return XRayCause(
            _text(self.working_directory, _MAX_PATH_CHARS),
            _text(self.error_type, _MAX_TYPE_CHARS),
            _text(self.message, _MAX_MESSAGE_CHARS),
            tuple(StackFrame(_text(f.label, _MAX_LABEL_CHARS), _text(f.path, _MAX_PATH_CHARS), f.line)
                  for f in self.stack[-_MAX_FRAMES:]),
        )

    def bounded(self, limit: int = MAX_XRAY_CAUSE_BYTES) -> XRayCause:
        """Cut, then with the oldest frames dropped until the header value fits ``limit`` bytes."""
        cause = self.cut()
        keep = len(cause.stack)
        while keep and len(_encode(cause.to_data())) > limit:
            keep = keep * 3 // 4 if keep > 4 else keep - 1
            cause = cause._replace(stack=cause.stack[len(cause.stack) - keep:] if keep else ())
        return cause

    def header_value(self, limit: int = MAX_XRAY_CAUSE_BYTES) -> str:
        return _encode(self.bounded(limit).to_data())


def _text(value: str, limit: int) -> str:
    """At most ``limit`` characters, a lone surrogate (legal in a Python str, not in UTF-8) replaced by ``?``."""
    return value[:limit].encode("utf-8", "replace").decode("utf-8")


def _frame_from_data(data: object) -> StackFrame | None:
    if not isinstance(data, dict):
        return None
    label, path, line = data.get("label"), data.get("path"), data.get("line")
    if not isinstance(label, str) or not isinstance(path, str) or type(line) is not int or not 0 <= line < 2**31:
        return None
    return StackFrame(label, path, line)


def _encode(document: dict[str, Any]) -> str:
    """ASCII JSON: every non-ASCII or control character (CR and LF included) is a ``\\u`` escape."""
    return json.dumps(document, ensure_ascii=True)
