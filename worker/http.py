"""What handlers behind API Gateway, an ALB or a function URL use to answer: ``http_response`` and ``HTTPError``.

    from lambda_supervisor.worker.http import HTTPError, http_response

Both work behind API Gateway, an ALB or a function URL without any setting (an unchanged function uses neither).
A handler that opted in to HTTP shaping (``LAMBDA_SUPERVISOR_HTTP`` or ``@lambda_handler(http=True)``) may also
return a plain dict, list, str or bytes and have the runtime shape it; these two are for when it wants to choose the
status or headers.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from http import HTTPStatus

from .serialisers import to_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
BINARY_TYPE = "application/octet-stream"


class HTTPResponse:
    """A response ready to be rendered as the proxy response of whichever HTTP source sent the event. Immutable,
    compared by value (a plain class, not a dataclass: the worker does not import dataclasses at start)."""

    __slots__ = ("body", "headers", "is_base64", "status_code")
    body: str
    status_code: int
    headers: Mapping[str, str]
    is_base64: bool

    def __init__(self, body: str, status_code: int = 200, headers: Mapping[str, str] | None = None,
                 is_base64: bool = False) -> None:
        for name, value in (("body", body), ("status_code", status_code), ("headers", headers or {}),
                            ("is_base64", is_base64)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"HTTPResponse is immutable: cannot set {name}")

    def _fields(self) -> tuple[str, int, Mapping[str, str], bool]:
        return self.body, self.status_code, self.headers, self.is_base64

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HTTPResponse) and self._fields() == other._fields()

    def __hash__(self) -> int:
        raise TypeError("unhashable type: 'HTTPResponse'")

    def __repr__(self) -> str:
        return (f"HTTPResponse(body={self.body!r}, status_code={self.status_code!r}, headers={self.headers!r}, "
                f"is_base64={self.is_base64!r})")


def status_line(status_code: int) -> str:
    """``404`` -> ``"404 Not Found"`` (what an ALB wants as ``statusDescription``)."""
    try:
        return f"{status_code} {HTTPStatus(status_code).phrase}"
    except ValueError:
        return str(status_code)


def http_response(
    body: Any = "",
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    content_type: str | None = None,
    is_base64: bool = False,
) -> HTTPResponse:
    """Build a response: a str body is sent as text, bytes as base64, ``None`` as an empty body and anything else
    as JSON; ``content_type`` defaults accordingly, and a Content-Type in ``headers`` wins over both. With
    ``is_base64=True`` a str body is taken to be base64 already."""
    if isinstance(body, bytes | bytearray | memoryview):
        text, is_base64, default_type = base64.b64encode(body).decode("ascii"), True, BINARY_TYPE
    elif isinstance(body, str):
        text, default_type = body, BINARY_TYPE if is_base64 else TEXT_TYPE
    elif body is None:
        text, default_type = "", None
    else:
        text, default_type = to_json(body), JSON_TYPE
    merged = dict(headers or {})
    content_type = content_type or default_type
    if content_type and not any(name.lower() == "content-type" for name in merged):
        merged = {"Content-Type": content_type, **merged}
    return HTTPResponse(body=text, status_code=int(status_code), headers=merged, is_base64=is_base64)


class HTTPError(Exception):
    """Raise to answer an HTTP request with an error status, e.g. ``raise HTTPError(404, "no such order")``.

    Behind API Gateway, an ALB or a function URL it becomes a proxy response with that status and ``body`` (shaped
    as by :func:`http_response`, so a dict becomes JSON); for any other event it is an ordinary handler error.
    """

    def __init__(self, status_code: int, body: Any = None, *, headers: Mapping[str, str] | None = None) -> None:
        self.status_code = int(status_code)
        self.body = status_line(self.status_code) if body is None else body
        self.headers = dict(headers or {})
        super().__init__(f"{status_line(self.status_code)}: {self.body}")

    def response(self) -> HTTPResponse:
        return http_response(self.body, status_code=self.status_code, headers=self.headers)
