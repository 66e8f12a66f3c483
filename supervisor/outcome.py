"""What one invocation produced, and why a worker is replaced.

An outcome is either a :class:`Response` or a :class:`Failure`; there is no third state. Both are frozen: what the
worker handle decided is posted as it is, and any fact learnt later (a foreign post, say) is kept beside it.
:class:`ReplacementReason` is the one list of reasons a worker is replaced; its values are the ``reason`` of the
``worker replaced`` log line and a CloudWatch metric dimension, so they never change.
"""

from __future__ import annotations

from lambda_supervisor.shared.errors import error_object
from lambda_supervisor.shared.protocol import JSON_CONTENT_TYPE

from .frozen import Frozen

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's
if TYPE_CHECKING:
    from enum import StrEnum as _Names
    from typing import Any
else:
    _Names = object  # mypy reads an enum; at run time plain str constants (an enum class costs ~0.1 ms at start)


class ReplacementReason(_Names):
    """Why a worker was replaced (or, for an invocation's fault, has to be)."""

    # faults: the invocation broke the worker
    CRASH = "crash"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out-of-memory"
    MEMORY_ERROR = "memory-error"
    INVALID_MESSAGE = "invalid-message"
    OVERSIZE_FRAME = "oversize-frame"
    STRAY_FRAME = "stray-frame"
    SHUTDOWN = "shutdown"
    FOREIGN_POST = "foreign-post"  # someone else answered its request through the Runtime API
    # no invocation's fault: the worker died while it waited for an event
    DIED_WHILE_IDLE = "died-while-idle"
    # no invocation's fault: the supervisor hit an unexpected error in the slot; it starts over with a new worker
    SUPERVISOR_ERROR = "supervisor-error"
    # recycling a healthy worker between two requests
    RECYCLE_MAX_INVOCATIONS = "recycle-max-invocations"
    RECYCLE_MAX_AGE = "recycle-max-age"
    RECYCLE_RSS_OVER_LIMIT = "recycle-rss-over-limit"
    RECYCLE_RSS_SOFT_LIMIT = "recycle-rss-soft-limit"
    RECYCLE_ZOMBIES = "recycle-zombies"


class Response(Frozen):
    """The handler's result, to post as it is. ``fault`` is set when the worker must still be replaced after it
    (it wrote a second frame with its reply: its own answer stands)."""

    __slots__ = ("body", "content_type", "fault")
    body: bytes | memoryview  # a view of the worker's shared-memory region, for a large result
    content_type: str  # checked against RESULT_CONTENT_TYPES by the post
    fault: ReplacementReason | None

    def __init__(self, body: bytes | memoryview, content_type: str = JSON_CONTENT_TYPE,
                 fault: ReplacementReason | None = None) -> None:
        self._set(body=body, content_type=content_type, fault=fault)


class Failure(Frozen):
    """An error object to post, and the fault that ended the worker (None: the handler's own error)."""

    __slots__ = ("blame", "delivered", "error", "fault", "never_sent", "xray_cause")
    error: dict[str, Any]
    fault: ReplacementReason | None
    xray_cause: object  # the worker's X-Ray cause for the error, unchecked (the post checks it)
    #: False: the worker was gone before one byte of the event reached it (not this request's fault).
    delivered: bool
    #: Set when this request failed for another's fault: the earlier request whose stray frame broke the worker
    #: ("" if it came before any invocation). The request is served again, on a fresh worker.
    blame: str | None
    #: True: the event had no time left on arrival and was answered without the worker.
    never_sent: bool

    def __init__(self, error: dict[str, Any], fault: ReplacementReason | None = None, xray_cause: object = None,
                 delivered: bool = True, blame: str | None = None, never_sent: bool = False) -> None:
        self._set(error=error, fault=fault, xray_cause=xray_cause, delivered=delivered, blame=blame,
                  never_sent=never_sent)

    @property
    def error_type(self) -> str:
        return str(self.error["errorType"])  # parse_error and error_object make it a non-empty str


Outcome = Response | Failure


def failure(error_type: str, request_id: str, detail: str, fault: ReplacementReason | None = None, *,
            delivered: bool = True, blame: str | None = None, never_sent: bool = False) -> Failure:
    """An error outcome whose message names the request, in the form Lambda's own runtime errors take."""
    return Failure(error_object(error_type, f"RequestId: {request_id} Error: {detail}"), fault,
                   delivered=delivered, blame=blame, never_sent=never_sent)
