"""What the emulator remembers about each invocation and each error the runtime posted."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

OutcomeKind = Literal["response", "error"]
Post = tuple[OutcomeKind, "bytes | PostedError"]

_PREVIEW_BYTES = 300


def _preview(body: bytes) -> str:
    shown = body[:_PREVIEW_BYTES]
    more = f"... ({len(body)} bytes)" if len(body) > _PREVIEW_BYTES else ""
    return f"{shown!r}{more}"


@dataclass
class PostedError:
    """An error posted by the runtime: to ``/invocation/{id}/error`` or to ``/init/error``."""

    body: bytes
    error: dict[str, Any] | None  # the body parsed as a JSON object, None if it is not one
    error_type_header: str | None  # Lambda-Runtime-Function-Error-Type

    @classmethod
    def parse(cls, body: bytes, error_type_header: str | None) -> PostedError:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        return cls(body, parsed if isinstance(parsed, dict) else None, error_type_header)

    @property
    def error_type(self) -> str | None:
        value = (self.error or {}).get("errorType")
        return value if isinstance(value, str) else None

    @property
    def error_message(self) -> str | None:
        value = (self.error or {}).get("errorMessage")
        return value if isinstance(value, str) else None

    def describe(self) -> str:
        return f"error (type header {self.error_type_header!r}) with body {_preview(self.body)}"


@dataclass
class InvocationRecord:
    """One submitted invocation and everything the runtime posted for it."""

    request_id: str
    event: bytes
    submitted_at: float  # time.monotonic() at submit
    timeout_s: float
    trace_id: str
    client_context: str | None = None
    cognito_identity: str | None = None
    tenant_id: str | None = None
    handed_out: bool = False  # returned by GET /next
    # Epoch milliseconds: when GET /next handed it out + the function timeout, as on Lambda (None before that).
    deadline_ms: int | None = None
    handed_out_at: float | None = None  # time.monotonic() at hand-out
    # ("response", body) or ("error", PostedError), in arrival order, duplicates included; only posts made in time.
    posts: list[Post] = field(default_factory=list)
    # The request headers of each post, names in lower case, in the same order as ``posts``.
    post_headers: list[dict[str, str]] = field(default_factory=list)
    answered_at: float | None = None  # time.time() when the first of those posts arrived
    # Posts refused because they came after the deadline, in arrival order.
    late_posts: list[Post] = field(default_factory=list)
    # Set when an init error answered this invocation instead of the runtime (posts then stays as the runtime left it).
    init_error: PostedError | None = None
    # Set when the deadline passed with no post: what the caller gets instead (Sandbox.Timedout, as from AWS).
    timed_out: PostedError | None = None
    # Set when the runtime's response was over the size limit and refused (413): what the caller gets instead
    # (Function.ResponseSizeTooLarge, as from AWS). ``oversized_response`` is the refused body's size.
    too_large: PostedError | None = None
    oversized_response: int | None = None

    @property
    def outcome(self) -> Post | None:
        """The first post, or the init error, timeout or size refusal that answered this invocation, or None while
        there is none."""
        if self.too_large is not None:  # refused before anything else was posted: it is the first outcome
            return ("error", self.too_large)
        if self.posts:
            return self.posts[0]
        if self.init_error is not None:
            return ("error", self.init_error)
        if self.timed_out is not None:
            return ("error", self.timed_out)
        return None

    @property
    def outcome_kind(self) -> OutcomeKind | None:
        outcome = self.outcome
        return None if outcome is None else outcome[0]

    @property
    def outcome_headers(self) -> dict[str, str]:
        """The request headers of the first post (names in lower case); empty while there is none."""
        return self.post_headers[0] if self.post_headers else {}

    @property
    def content_type(self) -> str | None:
        """The Content-Type the first post was sent with."""
        return self.outcome_headers.get("content-type")

    @property
    def response(self) -> bytes:
        outcome = self.outcome
        if outcome is None or outcome[0] != "response" or not isinstance(outcome[1], bytes):
            raise AssertionError(f"expected a response for {self.request_id}, got {self.describe()}")
        return outcome[1]

    def json(self) -> Any:
        return json.loads(self.response)

    @property
    def error(self) -> PostedError:
        outcome = self.outcome
        if outcome is None or not isinstance(outcome[1], PostedError):
            raise AssertionError(f"expected an error for {self.request_id}, got {self.describe()}")
        return outcome[1]

    def describe(self) -> str:
        """A human account of what happened to this invocation, for assertion messages."""
        parts = [
            body.describe() if isinstance(body, PostedError) else f"response {_preview(body)}" for _, body in self.posts
        ]
        if self.init_error is not None:
            parts.insert(0, f"init {self.init_error.describe()}")
        if self.oversized_response is not None:
            parts.insert(0, f"refused an oversized response ({self.oversized_response} bytes)")
        if self.timed_out is not None:
            parts.append(f"timed out at its deadline ({self.timed_out.describe()})")
        parts += [f"refused late post: {body.describe() if isinstance(body, PostedError) else _preview(body)}"
                  for _, body in self.late_posts]
        if not parts:
            return "nothing posted yet" + ("" if self.handed_out else " (never handed out by /next)")
        return "; then ".join(parts)
