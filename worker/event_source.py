"""Tell which AWS service sent an event, from its shape alone.

Lambda does not say who invoked a function, so the runtime looks at the event: when the handler opted in, HTTP front
doors get proxy responses (see :mod:`.http_shaping`); everything else, authorizers included, gets the handler's
result as is. This runs on every
invocation, so it is a handful of dict lookups and never walks the event.
"""

from __future__ import annotations

from enum import StrEnum

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class EventSource(StrEnum):
    """The kind of event, as handlers see it in ``context.event_source``."""

    DIRECT = "direct"
    APIGATEWAY_REST = "apigateway-rest"
    APIGATEWAY_HTTP = "apigateway-http"
    #: A Lambda authorizer of a REST, HTTP or WebSocket API: it answers with a policy or ``isAuthorized``.
    APIGATEWAY_AUTHORIZER = "apigateway-authorizer"
    FUNCTION_URL = "function-url"
    ALB = "alb"
    EVENTBRIDGE = "eventbridge"
    SNS = "sns"
    SQS = "sqs"
    S3 = "s3"


#: Sources whose caller expects a proxy response (statusCode, headers, body, isBase64Encoded).
HTTP_SOURCES = frozenset(
    {EventSource.APIGATEWAY_REST, EventSource.APIGATEWAY_HTTP, EventSource.FUNCTION_URL, EventSource.ALB}
)

#: ``type`` of an authorizer's event: REST TOKEN authorizers; REST, WebSocket and HTTP API REQUEST authorizers.
_AUTHORIZER_TYPES = frozenset({"TOKEN", "REQUEST"})

#: ``eventSource`` of the first record in ``Records`` (SNS spells the key ``EventSource``).
_RECORD_SOURCES = {"aws:sqs": EventSource.SQS, "aws:s3": EventSource.S3, "aws:sns": EventSource.SNS}


def classify(event: Any) -> EventSource:
    """The source of ``event``; anything not recognised (including non-objects) is a direct invocation."""
    if not isinstance(event, dict):
        return EventSource.DIRECT
    if _is_authorizer(event):  # before the HTTP shapes: a REQUEST authorizer's event carries the request's fields
        return EventSource.APIGATEWAY_AUTHORIZER
    request_context = event.get("requestContext")
    if isinstance(request_context, dict):
        return _classify_http(event, request_context)
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        first = records[0]
        name = first.get("eventSource") or first.get("EventSource")
        return _RECORD_SOURCES.get(name, EventSource.DIRECT) if isinstance(name, str) else EventSource.DIRECT
    if "detail-type" in event and "source" in event:
        return EventSource.EVENTBRIDGE
    return EventSource.DIRECT


def _is_authorizer(event: dict[str, Any]) -> bool:
    """REST and WebSocket authorizers (and HTTP API ones, payload 1.0) name the method's ARN in ``methodArn``; HTTP
    API authorizers with payload 2.0 name the route's in ``routeArn``."""
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in _AUTHORIZER_TYPES:
        return False
    return isinstance(event.get("methodArn"), str) or isinstance(event.get("routeArn"), str)


def _classify_http(event: dict[str, Any], request_context: dict[str, Any]) -> EventSource:
    if "elb" in request_context:
        return EventSource.ALB
    if event.get("version") == "2.0":
        # Function URLs use HTTP API's payload format 2.0; only their domain tells them apart.
        domain = request_context.get("domainName")
        if isinstance(domain, str) and ".lambda-url." in domain:
            return EventSource.FUNCTION_URL
        return EventSource.APIGATEWAY_HTTP
    if "httpMethod" in event:  # REST APIs, and HTTP APIs using payload format 1.0 (the same shape)
        return EventSource.APIGATEWAY_REST
    return EventSource.DIRECT
