"""The event-source classifier against our sample events of each source, and against shapes it must not claim."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lambda_supervisor.worker.event_source import HTTP_SOURCES, EventSource, classify

EVENTS = Path(__file__).parents[1] / "events"
SAMPLES = {
    "apigateway-rest": EventSource.APIGATEWAY_REST,
    "apigateway-http": EventSource.APIGATEWAY_HTTP,
    "function-url": EventSource.FUNCTION_URL,
    "alb": EventSource.ALB,
    "alb-multi-value": EventSource.ALB,
    "eventbridge": EventSource.EVENTBRIDGE,
    "scheduled": EventSource.EVENTBRIDGE,
    "sns": EventSource.SNS,
    "sqs": EventSource.SQS,
    "s3": EventSource.S3,
    "direct": EventSource.DIRECT,
    "authorizer-token": EventSource.APIGATEWAY_AUTHORIZER,
    "authorizer-rest-request": EventSource.APIGATEWAY_AUTHORIZER,
    "authorizer-http-v1": EventSource.APIGATEWAY_AUTHORIZER,
    "authorizer-http-v2": EventSource.APIGATEWAY_AUTHORIZER,
    "authorizer-websocket": EventSource.APIGATEWAY_AUTHORIZER,
}


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())  # type: ignore[no-any-return]


def test_every_sample_file_is_covered() -> None:
    assert {path.stem for path in EVENTS.glob("*.json")} == set(SAMPLES)


@pytest.mark.parametrize(("name", "source"), SAMPLES.items())
def test_samples_are_classified(name: str, source: EventSource) -> None:
    assert classify(sample(name)) is source


@pytest.mark.parametrize("event", [
    None, [], "text", 42, {}, {"Records": []}, {"Records": ["x"]}, {"Records": [{"eventSource": "aws:kinesis"}]},
    {"requestContext": {}}, {"requestContext": "x", "httpMethod": "GET"}, {"source": "only"},
    {"Records": [{"eventSource": 7}]}, {"type": "TOKEN"}, {"type": ["TOKEN"], "methodArn": "arn:x"},
    {"type": "OTHER", "methodArn": "arn:x"}, {"type": "REQUEST", "methodArn": 7},
])
def test_anything_else_is_direct(event: Any) -> None:
    assert classify(event) is EventSource.DIRECT


def test_http_api_payload_v1_is_shaped_like_rest() -> None:
    event = {"version": "1.0", "httpMethod": "GET", "requestContext": {"apiId": "x"}}
    assert classify(event) is EventSource.APIGATEWAY_REST


def test_the_enum_compares_as_its_string() -> None:
    assert EventSource.FUNCTION_URL == "function-url" and json.dumps(EventSource.SQS) == '"sqs"'
    assert EventSource.ALB in HTTP_SOURCES and EventSource.SQS not in HTTP_SOURCES


def test_authorizers_are_not_http_sources() -> None:
    """A REQUEST authorizer's event carries the request's own fields (httpMethod, requestContext, version 2.0), but
    its answer is a policy or isAuthorized: it must never be shaped into a proxy response."""
    assert EventSource.APIGATEWAY_AUTHORIZER not in HTTP_SOURCES
    for name in ("authorizer-rest-request", "authorizer-http-v1", "authorizer-http-v2"):
        event = sample(name)
        assert "requestContext" in event and classify(event) is EventSource.APIGATEWAY_AUTHORIZER
        del event["type"]
        assert classify(event) in HTTP_SOURCES, "without its type, the same event is the request itself"
