"""Turn what a handler behind an HTTP source returned (or raised) into that source's proxy response.

API Gateway (REST and HTTP APIs), function URLs and ALBs all take ``statusCode``, ``headers``, ``body`` and
``isBase64Encoded``; an ALB also wants ``statusDescription``, and ``multiValueHeaders`` instead of ``headers``
when its target group has multi-value headers on (then its events carry ``multiValueHeaders``).
"""

from __future__ import annotations

from .event_source import EventSource
from .http import TEXT_TYPE, HTTPError, HTTPResponse, http_response, status_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NO_CONTENT = 204
INTERNAL_SERVER_ERROR = 500


def render(response: HTTPResponse, source: EventSource, event: dict[str, Any]) -> dict[str, Any]:
    """The proxy response dict for ``response``, in the dialect of ``source``."""
    proxy: dict[str, Any] = {"statusCode": response.status_code}
    if source is EventSource.ALB:
        proxy["statusDescription"] = status_line(response.status_code)
        if "multiValueHeaders" in event:
            proxy["multiValueHeaders"] = {name: [value] for name, value in response.headers.items()}
        else:
            proxy["headers"] = dict(response.headers)
    else:
        proxy["headers"] = dict(response.headers)
    proxy["body"] = response.body
    proxy["isBase64Encoded"] = response.is_base64
    return proxy


def shape_result(result: Any, source: EventSource, event: dict[str, Any]) -> Any:
    """A dict that already has a ``statusCode`` is passed as is; an :class:`HTTPResponse` is rendered; ``None`` is
    204 No Content; anything else is the body of a 200 (may raise TypeError/ValueError for an unencodable body)."""
    if isinstance(result, dict) and "statusCode" in result:
        return result
    if isinstance(result, HTTPResponse):
        return render(result, source, event)
    if result is None:
        return render(http_response(None, status_code=NO_CONTENT), source, event)
    return render(http_response(result), source, event)


def http_error_response(error: HTTPError, source: EventSource, event: dict[str, Any]) -> dict[str, Any]:
    try:
        return render(error.response(), source, event)
    except (TypeError, ValueError):  # a body JSON cannot encode: keep the status, say so plainly
        return render(http_response(status_line(error.status_code), status_code=error.status_code), source, event)


def internal_error_response(source: EventSource, event: dict[str, Any]) -> dict[str, Any]:
    """A 500 that tells the caller nothing about the code behind it (the stack goes to the log instead)."""
    response = http_response(status_line(INTERNAL_SERVER_ERROR), status_code=INTERNAL_SERVER_ERROR,
                             content_type=TEXT_TYPE)
    return render(response, source, event)
