"""Unit tests for the pieces behind HTTP events and codecs: response shaping, body decoding, settings, dotted paths
and the registration decorator. Fast, in-process; the end-to-end behaviour is in test_event_sources.py."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from lambda_supervisor.worker.event_source import EventSource
from lambda_supervisor.worker.handler_loader import InitFailure
from lambda_supervisor.worker.http import HTTPError, HTTPResponse, http_response, status_line
from lambda_supervisor.worker.http_shaping import internal_error_response, render, shape_result
from lambda_supervisor.worker.registration import HandlerOptions, lambda_handler, registered_options
from lambda_supervisor.worker.request_body import decode_base64_body
from lambda_supervisor.worker.serialisers import ResolveError, identity, resolve_callable
from lambda_supervisor.worker.settings import parse_bool, read_decode_base64, resolve_options, worker_settings_table


def test_http_response_body_types() -> None:
    assert http_response({"a": 1}) == HTTPResponse('{"a": 1}', 200, {"Content-Type": "application/json"})
    assert http_response("hi").headers == {"Content-Type": "text/plain; charset=utf-8"}
    binary = http_response(b"\x00\xff", status_code=201)
    assert binary.is_base64 and base64.b64decode(binary.body) == b"\x00\xff" and binary.status_code == 201
    assert binary.headers == {"Content-Type": "application/octet-stream"}
    assert http_response(None) == HTTPResponse("", 200, {})
    assert http_response("AAE=", is_base64=True) == HTTPResponse("AAE=", 200,
                                                                 {"Content-Type": "application/octet-stream"}, True)
    assert http_response([1], content_type="application/vnd.x+json").headers == {
        "Content-Type": "application/vnd.x+json"}
    assert http_response("x", headers={"content-type": "text/csv", "X-A": "1"}).headers == {
        "content-type": "text/csv", "X-A": "1"}, "the caller's Content-Type wins, whatever its case"


def test_shaping_per_source() -> None:
    response = http_response("gone", status_code=410)
    rest = render(response, EventSource.APIGATEWAY_REST, {})
    assert rest == {"statusCode": 410, "headers": {"Content-Type": "text/plain; charset=utf-8"}, "body": "gone",
                    "isBase64Encoded": False}
    alb = render(response, EventSource.ALB, {})
    assert alb["statusDescription"] == "410 Gone" and alb["headers"] == rest["headers"]
    multi = render(response, EventSource.ALB, {"multiValueHeaders": {}})
    assert multi["multiValueHeaders"] == {"Content-Type": ["text/plain; charset=utf-8"]} and "headers" not in multi
    ready = {"statusCode": 200, "body": "as is"}
    assert shape_result(ready, EventSource.FUNCTION_URL, {}) is ready
    assert shape_result(None, EventSource.APIGATEWAY_HTTP, {})["statusCode"] == 204
    assert json.loads(shape_result([1, 2], EventSource.APIGATEWAY_HTTP, {})["body"]) == [1, 2]
    assert internal_error_response(EventSource.ALB, {})["statusDescription"] == "500 Internal Server Error"


def test_http_error() -> None:
    error = HTTPError(404, "no such order", headers={"X-Reason": "missing"})
    assert str(error) == "404 Not Found: no such order"
    assert error.response() == http_response("no such order", 404, {"X-Reason": "missing"})
    assert HTTPError(418).response().body == "418 I'm a Teapot"
    assert json.loads(HTTPError(422, {"field": "name"}).response().body) == {"field": "name"}
    assert status_line(299) == "299"


def test_base64_body_decoding() -> None:
    text = {"body": base64.b64encode("héllo".encode()).decode(), "isBase64Encoded": True}
    decode_base64_body(text)
    assert text == {"body": "héllo", "isBase64Encoded": False}
    binary = {"body": base64.b64encode(b"\xff\xfe").decode(), "isBase64Encoded": True}
    decode_base64_body(binary)
    assert binary == {"body": b"\xff\xfe", "isBase64Encoded": False}
    for untouched in ({"body": "not base64!", "isBase64Encoded": True}, {"body": "aGk=", "isBase64Encoded": False},
                      {"body": None, "isBase64Encoded": True}, {}):
        before = dict(untouched)
        decode_base64_body(untouched)
        assert untouched == before


@pytest.mark.parametrize(("text", "value"), [("true", True), ("1", True), (" YES ", True), ("False", False),
                                             ("0", False), ("no", False)])
def test_boolean_settings_are_strict(text: str, value: bool) -> None:
    assert parse_bool("VAR", text) is value


@pytest.mark.parametrize("text", ["enabled", "none", "2", "tru", "y"])
def test_other_boolean_spellings_are_init_errors(text: str) -> None:
    with pytest.raises(InitFailure) as failure:
        parse_bool("LAMBDA_SUPERVISOR_DECODE_BASE64", text)
    assert failure.value.error["errorType"] == "Runtime.InvalidConfiguration"
    assert failure.value.error["errorMessage"].startswith(f"LAMBDA_SUPERVISOR_DECODE_BASE64={text!r} is invalid")


def test_resolve_callable() -> None:
    assert resolve_callable("identity") is identity
    assert resolve_callable("json.dumps") is json.dumps
    assert resolve_callable("json:loads") is json.loads
    for bad in ("", "dumps", "json.", "json.no_such", "json.decoder.scanstring.x", "1json.dumps"):
        with pytest.raises(ResolveError):
            resolve_callable(bad)


def test_lambda_handler_bare_and_with_arguments() -> None:
    def plain(event: Any, context: Any) -> Any:
        return event

    assert registered_options(plain) == HandlerOptions()
    bare = lambda_handler(plain)
    assert bare is plain and registered_options(plain) == HandlerOptions()

    @lambda_handler(serialiser=identity, decode_base64=False)
    def configured(event: Any, context: Any) -> Any:
        return event

    assert configured("e", None) == "e", "the decorated function stays callable as before"
    assert registered_options(configured) == HandlerOptions(serialiser=identity, decode_base64=False)
    with pytest.raises(TypeError):
        lambda_handler(serialiser="json.dumps")  # type: ignore[arg-type]


def test_environment_options_win_over_registered_ones() -> None:
    @lambda_handler(serialiser=identity, deserialiser=identity, decode_base64=False)
    def configured(event: Any, context: Any) -> Any:
        return event

    assert resolve_options({}, None, configured) == HandlerOptions(identity, identity, False, False)
    environ = {"LAMBDA_SUPERVISOR_SERIALISER": "json.dumps", "LAMBDA_SUPERVISOR_DECODE_BASE64": "yes"}
    options = resolve_options(environ, read_decode_base64(environ), configured)
    assert options == HandlerOptions(json.dumps, identity, True, False)


def test_http_shaping_is_off_unless_opted_in_and_decoding_follows_it() -> None:
    def plain(event: Any, context: Any) -> Any:
        return event

    assert resolve_options({}, None, plain) == HandlerOptions(None, None, False, False)
    assert resolve_options({}, None, plain, True) == HandlerOptions(None, None, True, True)
    assert resolve_options({}, False, plain, True) == HandlerOptions(None, None, False, True)
    shaped = lambda_handler(http=True)(plain)
    assert resolve_options({}, None, shaped) == HandlerOptions(None, None, True, True)
    assert resolve_options({}, None, shaped, False) == HandlerOptions(None, None, False, False), "the env wins"
    assert parse_bool("X", "on") is True and parse_bool("X", "OFF") is False




def test_readme_documents_event_sources_and_the_worker_settings() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "## Event sources and HTTP" in readme
    assert worker_settings_table() in readme
    for source in EventSource:
        assert f'`"{source}"`' in readme, source
