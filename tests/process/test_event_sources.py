"""Event sources, HTTP responses and serialisers, end to end: sample events of each source through the emulator and
the real bootstrap, and what the handler saw and what was posted back."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from conftest import FAULTS, TASK_ROOTS, StartRuntime
from lambda_supervisor.local.emulator.records import InvocationRecord
from lambda_supervisor.supervisor.exit_codes import ExitCode

EVENTS = Path(__file__).parents[1] / "events"
HTTP_ROOT = TASK_ROOTS / "http"
#: HTTP shaping, error-to-500 and base64 decoding are opt-in; the tests of those features opt in.
SHAPING = {"LAMBDA_SUPERVISOR_HTTP": "true"}


def sample(name: str) -> dict[str, Any]:
    """One of our sample events (tests/events/NAME.json), parsed."""
    return json.loads((EVENTS / f"{name}.json").read_text())  # type: ignore[no-any-return]


def proxy_body(record: InvocationRecord) -> Any:
    """The JSON body inside a proxy response."""
    response = record.json()
    assert response["isBase64Encoded"] is False, response
    return json.loads(response["body"])


HTTP_SAMPLES = [
    ("apigateway-rest", "apigateway-rest"),
    ("apigateway-http", "apigateway-http"),
    ("function-url", "function-url"),
    ("alb", "alb"),
]
OTHER_SAMPLES = [
    ("eventbridge", "eventbridge"),
    ("scheduled", "eventbridge"),
    ("sns", "sns"),
    ("sqs", "sqs"),
    ("s3", "s3"),
    ("direct", "direct"),
]


def test_each_source_is_classified_and_shaped_on_one_warm_worker(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("app.describe", task_root=HTTP_ROOT, env=SHAPING)
    for name, source in HTTP_SAMPLES:
        record = runtime.invoke(sample(name))
        response = record.json()
        assert response["statusCode"] == 200, (name, response)
        assert response["headers"]["Content-Type"] == "application/json", (name, response)
        assert json.loads(response["body"])["source"] == source, name
        assert ("statusDescription" in response) == (source == "alb"), response
    for name, source in OTHER_SAMPLES:
        record = runtime.invoke(sample(name))
        assert record.json()["source"] == source, (name, record.describe())
        assert "statusCode" not in record.json(), "only HTTP sources get proxy responses"
    assert runtime.log().count("worker ready") == 1


def test_base64_request_bodies_are_decoded_to_text_or_bytes(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("app.describe", task_root=HTTP_ROOT, env=SHAPING)
    text = proxy_body(runtime.invoke(sample("apigateway-http")))
    assert text == {"source": "apigateway-http", "body": '{"quantity": 3}', "body_type": "str",
                    "isBase64Encoded": False}
    binary_event = sample("function-url")
    binary = proxy_body(runtime.invoke(binary_event))
    assert binary["body_type"] == "bytes" and binary["isBase64Encoded"] is False
    assert binary["body"] == base64.b64decode(binary_event["body"]).hex()
    plain = proxy_body(runtime.invoke(sample("apigateway-rest")))
    assert plain["body"] == '{"quantity": 3}' and plain["isBase64Encoded"] is False


@pytest.mark.parametrize(("handler", "env", "decoded"), [
    ("app.describe", {**SHAPING, "LAMBDA_SUPERVISOR_DECODE_BASE64": "no"}, False),
    ("app.keep_base64", SHAPING, False),  # @lambda_handler(decode_base64=False)
    ("app.keep_base64", {**SHAPING, "LAMBDA_SUPERVISOR_DECODE_BASE64": "TRUE"}, True),  # the environment wins
    ("app.shaped", {}, True),  # @lambda_handler(http=True): decoding follows shaping
    ("app.shaped", {"LAMBDA_SUPERVISOR_DECODE_BASE64": "off"}, False),
])
def test_base64_decoding_can_be_turned_off(
    start_runtime: StartRuntime, handler: str, env: dict[str, str], decoded: bool
) -> None:
    runtime = start_runtime(handler, task_root=HTTP_ROOT, env=env)
    event = sample("apigateway-http")
    seen = proxy_body(runtime.invoke(event))
    if decoded:
        assert seen["body"] == '{"quantity": 3}' and seen["isBase64Encoded"] is False
    else:
        assert seen["body"] == event["body"] and seen["isBase64Encoded"] is True


@pytest.mark.parametrize("variable", ["LAMBDA_SUPERVISOR_DECODE_BASE64", "LAMBDA_SUPERVISOR_HTTP",
                                      "LAMBDA_SUPERVISOR_TAG_OUTPUT"])
def test_an_invalid_worker_switch_fails_init_naming_the_variable(start_runtime: StartRuntime, variable: str) -> None:
    runtime = start_runtime("app.describe", task_root=HTTP_ROOT, env={variable: "maybe"}, wait_ready=False)
    posted = runtime.emulator.wait_init_error(60)
    assert posted.error_type == "Runtime.InvalidConfiguration", posted.describe()
    assert f"{variable}='maybe' is invalid" in (posted.error_message or "")
    assert runtime.wait_exit() == ExitCode.INIT_FAILED


def test_plain_results_become_proxy_responses(start_runtime: StartRuntime) -> None:
    event = sample("apigateway-rest")
    runtime = start_runtime("app.text", task_root=HTTP_ROOT, env=SHAPING)
    assert runtime.invoke(event).json() == {"statusCode": 200, "headers": {"Content-Type": "text/plain; charset=utf-8"},
                                            "body": "hello, world", "isBase64Encoded": False}
    runtime = start_runtime("app.binary", task_root=HTTP_ROOT, env=SHAPING)
    response = runtime.invoke(event).json()
    assert response["isBase64Encoded"] is True
    assert response["headers"] == {"Content-Type": "application/octet-stream"}
    assert base64.b64decode(response["body"]) == b"\x89PNG\r\n\x1a\n"
    runtime = start_runtime("app.nothing", task_root=HTTP_ROOT, env=SHAPING)
    assert runtime.invoke(event).json() == {"statusCode": 204, "headers": {}, "body": "", "isBase64Encoded": False}


@pytest.mark.parametrize("env", [{}, SHAPING])
def test_explicit_and_ready_made_responses(start_runtime: StartRuntime, env: dict[str, str]) -> None:
    """http_response and a ready proxy response work with shaping on, and need no opt-in: an unchanged function
    uses neither."""
    runtime = start_runtime("app.explicit", task_root=HTTP_ROOT, env=env)
    response = runtime.invoke(sample("apigateway-http")).json()
    assert response["statusCode"] == 201
    assert response["headers"] == {"Content-Type": "application/json", "Location": "/orders/42"}
    assert json.loads(response["body"]) == {"created": "42"}
    runtime = start_runtime("app.explicit_html", task_root=HTTP_ROOT, env=env)
    assert runtime.invoke(sample("function-url")).json()["headers"] == {"Content-Type": "text/html"}
    runtime = start_runtime("app.proxy", task_root=HTTP_ROOT, env=env)
    assert runtime.invoke(sample("alb")).json() == {
        "statusCode": 302, "headers": {"Location": "https://example.com/"}, "body": ""}, "passed as is"


@pytest.mark.parametrize("env", [{}, SHAPING])
def test_http_error_is_a_status_for_http_events_and_an_error_otherwise(start_runtime: StartRuntime,
                                                                      env: dict[str, str]) -> None:
    runtime = start_runtime("app.not_found", task_root=HTTP_ROOT, env=env)
    rest = runtime.invoke(sample("apigateway-rest")).json()
    assert rest == {"statusCode": 404, "headers": {"Content-Type": "text/plain; charset=utf-8"},
                    "body": "no such order", "isBase64Encoded": False}
    alb = runtime.invoke(sample("alb")).json()
    assert alb["statusCode"] == 404 and alb["statusDescription"] == "404 Not Found"
    multi = runtime.invoke(sample("alb-multi-value")).json()
    assert multi["multiValueHeaders"] == {"Content-Type": ["text/plain; charset=utf-8"]} and "headers" not in multi
    for name in ("sqs", "direct"):
        error = runtime.invoke(sample(name)).error
        assert error.error_type == "HTTPError"
        assert error.error_message == "404 Not Found: no such order"
    assert "worker replaced" not in runtime.log()


def test_an_unexpected_exception_behind_http_is_a_500_that_leaks_nothing(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("app.boom", task_root=HTTP_ROOT, env=SHAPING)
    record = runtime.invoke(sample("apigateway-http"))
    response = record.json()
    assert response == {"statusCode": 500, "headers": {"Content-Type": "text/plain; charset=utf-8"},
                        "body": "500 Internal Server Error", "isBase64Encoded": False}
    assert "hunter2" not in record.response.decode()
    log = runtime.log()  # logged as awslambdaric logs an unhandled exception
    assert "[ERROR] RuntimeError: database password is hunter2\rTraceback (most recent call last)" in log
    assert 'app.py", line' in log
    # the same handler behind a queue is an ordinary error, with its stack
    error = runtime.invoke(sample("sqs")).error
    assert error.error_type == "RuntimeError" and error.error is not None
    assert any("app.py" in line for line in error.error["stackTrace"])
    alb = runtime.invoke(sample("alb")).json()
    assert alb["statusCode"] == 500 and alb["statusDescription"] == "500 Internal Server Error"


def test_an_unencodable_result_behind_http_is_a_500(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("app.unencodable", task_root=HTTP_ROOT, env=SHAPING)
    record = runtime.invoke(sample("apigateway-rest"))
    assert record.json()["statusCode"] == 500
    assert "[ERROR] TypeError: Object of type set is not JSON serializable" in runtime.log()
    assert runtime.invoke(sample("direct")).error.error_type == "Runtime.MarshalError"


@pytest.mark.parametrize(("handler", "env", "timeout_s", "error_type"), [
    ("faults.hang", {}, 1.0, "Runtime.Timeout"),
    ("faults.segfault", {}, 10.0, "Runtime.ExitError"),
    ("faults.os_exit", {}, 10.0, "Runtime.ExitError"),
    ("faults.blow_memory", {"LAMBDA_SUPERVISOR_MAX_RSS_MB": "150"}, 10.0, "Runtime.OutOfMemory"),
    ("faults.raise_memory_error", {}, 10.0, "MemoryError"),
])
def test_faults_behind_http_events_are_posted_as_lambda_errors(
    start_runtime: StartRuntime, handler: str, env: dict[str, str], timeout_s: float, error_type: str
) -> None:
    runtime = start_runtime(handler, task_root=FAULTS, env=env, timeout_s=timeout_s)
    for name in ("apigateway-http", "alb"):
        record = runtime.invoke(sample(name))
        assert record.outcome_kind == "error", record.describe()
        assert record.error.error_type == error_type, record.describe()
    assert runtime.alive()
    assert runtime.log().count("worker replaced") == 2


def test_by_default_http_events_get_exactly_what_lambda_sends_and_results_go_as_they_are(
    start_runtime: StartRuntime,
) -> None:
    """Without the opt-in, a handler behind HTTP is treated as awslambdaric treats it: its event untouched (base64
    bodies stay encoded), its result posted as it is, its exception an invocation error (Lambda's Errors metric)."""
    runtime = start_runtime("app.describe", task_root=HTTP_ROOT)
    for name, source in HTTP_SAMPLES:
        event = sample(name)
        seen = runtime.invoke(event).json()
        assert seen == {"source": source, "body": event.get("body"), "body_type": type(event.get("body")).__name__,
                        "isBase64Encoded": event.get("isBase64Encoded")}, name
    runtime = start_runtime("app.boom", task_root=HTTP_ROOT)
    for name, _ in HTTP_SAMPLES:
        error = runtime.invoke(sample(name)).error
        assert error.error_type == "RuntimeError" and "hunter2" in (error.error_message or ""), name
    runtime = start_runtime("app.text", task_root=HTTP_ROOT)
    assert runtime.invoke(sample("apigateway-rest")).json() == "hello, world"


def test_shaping_opted_in_by_the_decorator(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("app.shaped", task_root=HTTP_ROOT)
    response = runtime.invoke(sample("apigateway-http")).json()
    assert response["statusCode"] == 200 and json.loads(response["body"])["body"] == '{"quantity": 3}'
    assert runtime.invoke(sample("sqs")).json()["body"] is None, "other sources are never shaped"
    assert start_runtime("app.shaped", task_root=HTTP_ROOT, env={"LAMBDA_SUPERVISOR_HTTP": "off"}).invoke(
        sample("apigateway-http")).json()["isBase64Encoded"] is True, "the environment wins over the decorator"


AUTHORIZER_SAMPLES = ["authorizer-token", "authorizer-rest-request", "authorizer-http-v1", "authorizer-http-v2",
                      "authorizer-websocket"]


@pytest.mark.parametrize("env", [{}, SHAPING])
def test_authorizers_are_never_shaped(start_runtime: StartRuntime, env: dict[str, str]) -> None:
    """An authorizer's answer (an IAM policy, or an HTTP API simple response) reaches API Gateway as the handler
    returned it, even with shaping on; its exception is an invocation error (API Gateway then answers 500)."""
    runtime = start_runtime("app.authorize", task_root=HTTP_ROOT, env=env)
    for name in AUTHORIZER_SAMPLES:
        event = sample(name)
        answer = runtime.invoke(event).json()
        if "routeArn" in event:
            assert answer == {"isAuthorized": True, "context": {"source": "apigateway-authorizer"}}, name
        else:
            assert answer == {
                "principalId": "user-1",
                "policyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}]},
                "context": {"source": "apigateway-authorizer"},
            }, name
    denied = runtime.invoke({**sample("authorizer-token"), "authorizationToken": "deny"})
    assert denied.error.error_type == "Exception" and denied.error.error_message == "Unauthorized"


def test_async_handlers_run_behind_http_and_directly(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("app.async_describe", task_root=HTTP_ROOT, env=SHAPING)
    assert proxy_body(runtime.invoke(sample("function-url"))) == {"source": "function-url", "async": True}
    assert runtime.invoke(sample("s3")).json() == {"source": "s3", "async": True}


def test_the_event_loop_stays_warm_between_invocations(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("app.warm_loop", task_root=HTTP_ROOT)
    assert runtime.invoke({}).json() == {"task_pending": True}
    assert runtime.invoke({}).json() == {"task_pending": True}
    assert runtime.invoke({"release": True}).json() == {"task": "released", "same_loop": True}


def test_identity_codec_registered_by_decorator_is_raw_text_in_and_out(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("app.raw", task_root=HTTP_ROOT)
    assert runtime.invoke(b"not JSON at all").response == b"str:lla ta NOSJ ton"
    assert runtime.invoke(sample("apigateway-http")).response.startswith(b"str:}"), "raw text: no HTTP shaping"


def test_serialisers_from_the_environment_win_over_the_decorator(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("codecs_for_tests.echo_lines", task_root=HTTP_ROOT, env={
        "LAMBDA_SUPERVISOR_DESERIALISER": "codecs_for_tests.parse_lines",
        "LAMBDA_SUPERVISOR_SERIALISER": "codecs_for_tests:to_csv",
    })
    assert runtime.invoke(b"a\nb\nc").response == b"a,b,c"
    runtime = start_runtime("app.decorated_serialiser", task_root=HTTP_ROOT)
    assert runtime.invoke({"word": "hi"}).response == b"<hi>"
    runtime = start_runtime("app.decorated_serialiser", task_root=HTTP_ROOT,
                            env={"LAMBDA_SUPERVISOR_SERIALISER": "identity"})
    assert runtime.invoke({"word": "hi"}).response == b"hi"


def test_codec_failures_are_unmarshal_and_marshal_errors(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("app.returns_int_to_identity", task_root=HTTP_ROOT, env={
        "LAMBDA_SUPERVISOR_SERIALISER": "lambda_supervisor.worker.serialisers.identity"})
    error = runtime.invoke({}).error
    assert error.error_type == "Runtime.MarshalError"
    assert "the serialiser returned int, not str or bytes" in (error.error_message or "")
    runtime = start_runtime("app.describe", task_root=HTTP_ROOT,
                            env={"LAMBDA_SUPERVISOR_DESERIALISER": "codecs_for_tests.failing"})
    error = runtime.invoke({}).error
    assert error.error_type == "Runtime.UnmarshalError"
    assert error.error_message == "Unable to unmarshal input: ValueError: cannot read this"


@pytest.mark.parametrize(("variable", "path", "why"), [
    ("LAMBDA_SUPERVISOR_SERIALISER", "codecs_for_tests.nope", "has no attribute 'nope'"),
    ("LAMBDA_SUPERVISOR_SERIALISER", "codecs_for_tests.NOT_CALLABLE", "is a int, not a callable"),
    ("LAMBDA_SUPERVISOR_DESERIALISER", "no_such_module.parse", "cannot import module 'no_such_module'"),
    ("LAMBDA_SUPERVISOR_DESERIALISER", "not a path", "is not a dotted path"),
])
def test_a_bad_codec_path_fails_init_with_a_clear_error(
    start_runtime: StartRuntime, variable: str, path: str, why: str
) -> None:
    runtime = start_runtime("app.describe", task_root=HTTP_ROOT, env={variable: path}, wait_ready=False)
    posted = runtime.emulator.wait_init_error(60)
    assert posted.error_type == "Runtime.InvalidConfiguration", posted.describe()
    message = posted.error_message or ""
    assert message.startswith(f"{variable}={path!r} is invalid: "), message
    assert re.search(re.escape(why), message), message
    assert runtime.wait_exit() == ExitCode.INIT_FAILED
