"""The Invoker in-process: every outcome of a call is exactly one reply frame, decoded as the supervisor would; the
direct path as under awslambdaric, and limits that hold behind HTTP sources too."""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_supervisor.shared.protocol import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    Frame,
    FrameDecoder,
    InvokeMessage,
    parse_error,
)
from lambda_supervisor.worker import invocation as invocation_module
from lambda_supervisor.worker.context import FunctionInfo, LambdaContext
from lambda_supervisor.worker.invocation import (
    MAX_ERROR_BYTES,
    MAX_STACK_FRAMES,
    TRACE_ID_VARIABLE,
    Invoker,
    bounded_error_payload,
    decode_event,
    encode_result,
)
from lambda_supervisor.worker.registration import HandlerOptions, lambda_handler

FUNCTION = FunctionInfo(
    function_name="my-function",
    function_version="7",
    memory_limit_in_mb="512",
    log_group_name="/aws/lambda/my-function",
    log_stream_name="2024/01/01/[7]abcdef",
)
ARN = "arn:aws:lambda:eu-west-1:123456789012:function:my-function"
ONE_MB = 1024 * 1024


def now_ms() -> int:
    return int(time.time() * 1000)


def invoke(handler: Any, body: bytes = b"", *, max_response_bytes: int = 6 * ONE_MB, **fields: Any) -> Frame:
    """Run one invocation and decode its reply with a supervisor-sized decoder: there must be exactly one frame."""
    message = InvokeMessage(**{"request_id": "req-1", "deadline_ms": now_ms() + 60_000, "invoked_function_arn": ARN,
                               **fields})
    data = Invoker(handler, FUNCTION, max_response_bytes)(message, body)
    assert isinstance(data, bytes)
    decoder = FrameDecoder(max_payload_bytes=DEFAULT_MAX_PAYLOAD_BYTES)
    frames = decoder.feed(data)
    assert len(frames) == 1
    assert decoder.pending_bytes == 0
    assert frames[0].header["request_id"] == message.request_id
    return frames[0]


def result_of(frame: Frame) -> Any:
    assert frame.type == "result", frame
    return json.loads(frame.payload)


def error_of(frame: Frame, *, fatal: bool = False) -> dict[str, Any]:
    """The error object, checked the way the supervisor checks it."""
    assert frame.type == "error", frame
    assert frame.header["fatal"] is fatal
    assert len(frame.payload) <= MAX_ERROR_BYTES
    error = json.loads(frame.payload.decode("utf-8"))  # strict UTF-8, as the Runtime API will want it
    assert parse_error(frame.payload) == error
    assert frame.header["error_type"] == error["errorType"]
    return error


def echo(event: Any, context: Any) -> Any:
    return event


# -- results ---------------------------------------------------------------------------------------------------


def test_a_result_is_json() -> None:
    frame = invoke(lambda event, context: {"ok": True, "items": [1, 2.5, None], "text": "ünïcödé ✓"})
    assert result_of(frame) == {"ok": True, "items": [1, 2.5, None], "text": "ünïcödé ✓"}
    assert b"\\u00fcn\\u00efc\\u00f6d\\u00e9" in frame.payload  # escaped, as awslambdaric (but on python3.12+)


def test_the_event_is_the_decoded_body() -> None:
    assert result_of(invoke(echo, b'{"key": [1, {"n": null}], "s": "\\u00e9"}')) == {"key": [1, {"n": None}], "s": "é"}
    assert result_of(invoke(echo, b'"just a string"')) == "just a string"
    assert result_of(invoke(echo, b"42")) == 42


@pytest.mark.parametrize("body", [b"", b"   ", b"\n\t\r "])
def test_an_empty_body_is_an_empty_object(body: bytes) -> None:
    assert result_of(invoke(echo, body)) == {}
    assert decode_event(body) == {}


@pytest.mark.parametrize("body", [
    b"", b"   ", b" \x0b\x0c\n", b" \x1c", b'\n {"a": "\\ud800 \xc3\xa9"}', b"\xef\xbb\xbf[1]",
    '["utf-16 \u00e9"]'.encode("utf-16"), '{"32": 1}'.encode("utf-32-le"), b'"\xed\xa0\x80"', b"\xff", b"{x",
])
def test_an_event_in_the_region_decodes_as_the_same_bytes_do(body: bytes) -> None:
    """A large event is decoded from a view of the region: exactly as ``json.loads`` reads the bytes, errors too."""
    def outcome(data: bytes | memoryview) -> object:
        try:
            return ("event", decode_event(data))
        except Exception as error:
            return ("error", type(error).__name__, str(error))

    assert outcome(memoryview(bytearray(body))) == outcome(body)


def test_a_none_result_is_null() -> None:
    frame = invoke(lambda event, context: None)
    assert frame.payload == b"null"


@pytest.mark.parametrize(
    "body", [b"{not json", b"{'single': 'quotes'}", b'"\xff\xfe"', b"[1, 2", b"[" * 100_000, b"\x00", b"1 2"],
)
def test_an_undecodable_body_is_an_unmarshal_error(body: bytes) -> None:
    called: list[Any] = []
    error = error_of(invoke(lambda event, context: called.append(event), body))
    assert error["errorType"] == "Runtime.UnmarshalError"
    assert error["errorMessage"].startswith("Unable to unmarshal input")
    assert called == []  # the handler never ran


def test_a_set_result_is_a_marshal_error() -> None:
    error = error_of(invoke(lambda event, context: {"tags": {"a", "b"}}))
    assert error["errorType"] == "Runtime.MarshalError"
    assert "set" in error["errorMessage"]
    assert error["errorMessage"].startswith("Unable to marshal response")


def test_other_unserialisable_results_are_marshal_errors() -> None:
    assert error_of(invoke(lambda e, c: object()))["errorType"] == "Runtime.MarshalError"
    assert error_of(invoke(lambda e, c: memoryview(b"bytes")))["errorType"] == "Runtime.MarshalError"
    circular: list[Any] = []
    circular.append(circular)
    assert error_of(invoke(lambda e, c: circular))["errorType"] == "Runtime.MarshalError"
    assert error_of(invoke(lambda e, c: {Decimal(1): 2}))["errorType"] == "Runtime.MarshalError"


def test_a_lone_surrogate_is_escaped_as_awslambdaric_does() -> None:
    assert invoke(lambda e, c: "lone \ud800 surrogate").payload == b'"lone \\ud800 surrogate"'


def test_a_decimal_result_keeps_its_exact_digits() -> None:
    frame = invoke(lambda event, context: {"price": Decimal("12.50"), "n": [Decimal(3)],
                                           "big": Decimal("12345678901234567890.12345")})
    assert frame.payload == b'{"price": 12.50, "n": [3], "big": 12345678901234567890.12345}'
    assert encode_result(Decimal("0.1")) == (b"0.1", "application/json")
    assert encode_result(Decimal("NaN")) == (b"NaN", "application/json")


@pytest.mark.parametrize("value", [b"\x00\xffraw", bytearray(b"raw")])
def test_bytes_are_posted_raw_as_application_unknown(value: bytes | bytearray) -> None:
    frame = invoke(lambda event, context: value)
    assert frame.type == "result"
    assert frame.payload == bytes(value)
    assert frame.header["content_type"] == "application/unknown"


def test_a_json_result_frame_names_no_content_type() -> None:
    assert "content_type" not in invoke(lambda event, context: {"a": 1}).header


def test_non_ascii_is_utf8_on_the_managed_python_runtimes_from_3_12() -> None:
    from lambda_supervisor.worker.serialisers import escapes_non_ascii
    assert escapes_non_ascii({})
    assert escapes_non_ascii({"AWS_EXECUTION_ENV": "AWS_Lambda_python3.11"})
    assert not escapes_non_ascii({"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"})
    assert not escapes_non_ascii({"AWS_EXECUTION_ENV": "AWS_Lambda_python3.14"})


def test_a_result_over_the_limit_is_response_size_too_large() -> None:
    error = error_of(invoke(lambda event, context: "x" * 100, max_response_bytes=50))
    assert error["errorType"] == "Runtime.ResponseSizeTooLarge"
    assert "102 bytes" in error["errorMessage"]  # the JSON string's quotes count
    assert "50 bytes" in error["errorMessage"]


def test_a_result_exactly_at_the_limit_is_sent() -> None:
    frame = invoke(lambda event, context: "x" * 48, max_response_bytes=50)
    assert len(frame.payload) == 50
    assert result_of(frame) == "x" * 48


def test_the_limit_counts_bytes_not_characters() -> None:
    error = error_of(invoke(lambda event, context: "€" * 20, max_response_bytes=50))  # 20 chars, 62 bytes
    assert error["errorType"] == "Runtime.ResponseSizeTooLarge"


# -- handler exceptions ----------------------------------------------------------------------------------------


class OrderRejected(Exception):
    pass


def _validate(event: Any) -> None:
    raise OrderRejected(f"order {event['id']} has no items")


def failing_handler(event: Any, context: Any) -> Any:
    _validate(event)


def test_a_handler_exception_is_reported_by_class_message_and_stack() -> None:
    error = error_of(invoke(failing_handler, b'{"id": 17}'))
    assert error["errorType"] == "OrderRejected"
    assert error["errorMessage"] == "order 17 has no items"
    stack = error["stackTrace"]
    assert len(stack) == 2
    # the first entry is the handler's own frame, not the invoker's
    assert stack[0].startswith(f'  File "{__file__}"')
    assert "in failing_handler" in stack[0]
    assert "in _validate" in stack[1]
    assert not any(invocation_module.__file__ in line for line in stack)


def test_a_builtin_exception_keeps_its_name() -> None:
    error = error_of(invoke(lambda event, context: event["missing"]))
    assert error["errorType"] == "KeyError"
    assert error["errorMessage"] == "'missing'"
    assert len(error["stackTrace"]) == 1
    assert error["stackTrace"][0].startswith(f'  File "{__file__}"')


def test_an_exception_from_a_builtin_handler_has_an_empty_stack() -> None:
    error = error_of(invoke(int, b'"not a number"'))  # int(event, context) raises inside C code
    assert error["errorType"] == "TypeError"
    assert error["stackTrace"] == []


def test_a_memory_error_is_fatal() -> None:
    def hungry(event: Any, context: Any) -> Any:
        raise MemoryError("could not allocate")

    error = error_of(invoke(hungry), fatal=True)
    assert error["errorType"] == "MemoryError"
    assert error["errorMessage"] == "could not allocate"


def test_an_ordinary_exception_is_not_fatal() -> None:
    frame = invoke(failing_handler, b'{"id": 1}')
    assert frame.header["fatal"] is False


def test_system_exit_is_not_swallowed() -> None:
    def exits(event: Any, context: Any) -> Any:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        Invoker(exits, FUNCTION, 100)(InvokeMessage("r", now_ms()), b"")


def test_an_exception_whose_str_raises() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no string for you")

    def handler(event: Any, context: Any) -> Any:
        raise Unprintable()

    error = error_of(invoke(handler))
    assert error["errorType"] == "Unprintable"
    assert "Unprintable" in error["errorMessage"]
    assert "in handler" in error["stackTrace"][0]


@pytest.mark.parametrize(
    "unit", [pytest.param("a", id="ascii"), pytest.param("€", id="3-byte"), pytest.param("\U0001f600", id="4-byte"),
             pytest.param("\x01", id="control-char-6-bytes-escaped"), pytest.param('"', id="quote-escaped")],
)
def test_a_huge_exception_message_is_bounded_and_still_json(unit: str) -> None:
    message = unit * ONE_MB

    def handler(event: Any, context: Any) -> Any:
        raise ValueError(message)

    frame = invoke(handler)
    error = error_of(frame)  # checks the size bound, strict UTF-8 JSON and the supervisor's validation
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"].startswith(unit * 1000)
    assert f"[{ONE_MB} characters, truncated]" in error["errorMessage"]
    assert error["stackTrace"] and "in handler" in error["stackTrace"][0]


def test_a_lone_surrogate_in_a_message_still_gives_one_error_frame() -> None:
    def handler(event: Any, context: Any) -> Any:
        raise ValueError("bad byte \udcff in input")

    error = error_of(invoke(handler))
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"].startswith("bad byte ")


def test_a_deep_recursion_keeps_the_innermost_frames() -> None:
    def recurse(n: int) -> Any:
        if n == 0:
            raise RecursionError("bottom")
        return recurse(n - 1)

    error = error_of(invoke(lambda event, context: recurse(200)))
    assert error["errorType"] == "RecursionError"
    assert len(error["stackTrace"]) <= MAX_STACK_FRAMES  # traceback folds the repeated frames
    assert "raise RecursionError" in error["stackTrace"][-1]


def test_a_long_stack_keeps_the_innermost_frames() -> None:
    stack = [f"frame {i}\n" for i in range(200)]
    error = json.loads(bounded_error_payload({"errorType": "E", "errorMessage": "m", "stackTrace": stack}))
    assert error["stackTrace"] == stack[-MAX_STACK_FRAMES:]


def test_bounded_error_payload_with_huge_stack_lines() -> None:
    error = {"errorType": "E", "errorMessage": "m" * 300_000, "stackTrace": ["\x02" * 100_000] * 100}
    payload = bounded_error_payload(error)
    assert len(payload) <= MAX_ERROR_BYTES
    assert parse_error(payload)["errorType"] == "E"


def test_bounded_error_payload_leaves_small_errors_alone() -> None:
    error = {"errorType": "E", "errorMessage": "short", "stackTrace": ["a", "b"]}
    assert json.loads(bounded_error_payload(error)) == error


# -- the trace id ----------------------------------------------------------------------------------------------


def test_the_trace_id_is_set_for_the_call_and_removed_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRACE_ID_VARIABLE, "Root=stale")
    seen: list[str | None] = []

    def handler(event: Any, context: Any) -> Any:
        seen.append(os.environ.get(TRACE_ID_VARIABLE))

    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    invoke(handler, trace_id=trace)
    invoke(handler, trace_id="Root=1-second")
    invoke(handler)
    invoke(handler, trace_id=None)
    invoke(handler, trace_id="")
    assert seen == [trace, "Root=1-second", None, None, None]
    assert TRACE_ID_VARIABLE not in os.environ


def test_the_trace_id_is_set_even_when_the_event_is_undecodable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACE_ID_VARIABLE, raising=False)
    invoke(echo, b"{bad", trace_id="Root=1-x")
    assert os.environ[TRACE_ID_VARIABLE] == "Root=1-x"
    invoke(echo, b"{}")
    assert TRACE_ID_VARIABLE not in os.environ


# -- the context -----------------------------------------------------------------------------------------------


def capture_context(**fields: Any) -> LambdaContext:
    captured: list[LambdaContext] = []
    result_of(invoke(lambda event, context: captured.append(context), **fields))
    (context,) = captured
    return context


def test_context_fields() -> None:
    context = capture_context(request_id="8476a536-e9f4-11e8-9739-2dfe598c3fcd")
    assert context.aws_request_id == "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
    assert context.invoked_function_arn == ARN
    assert context.function_name == "my-function"
    assert context.function_version == "7"
    assert context.memory_limit_in_mb == "512"
    assert context.log_group_name == "/aws/lambda/my-function"
    assert context.log_stream_name == "2024/01/01/[7]abcdef"
    assert context.identity.cognito_identity_id is None
    assert context.identity.cognito_identity_pool_id is None
    assert context.client_context is None
    assert context.tenant_id is None
    assert context.w3c() == {}
    assert "my-function" in repr(context)


def test_a_missing_arn_is_none() -> None:
    assert capture_context(invoked_function_arn=None).invoked_function_arn is None


def test_the_tenant_id_comes_from_the_invoke_frame() -> None:
    assert capture_context(tenant_id="tenant-7").tenant_id == "tenant-7"


def test_w3c_fields_are_taken_out_of_the_client_context() -> None:
    raw = json.dumps({"custom": {"a": 1}, "w3c": {"traceparent": "00-abc-01", "baggage": 3, "other": "x"}})
    context = capture_context(client_context=raw)
    assert context.w3c() == {"traceparent": "00-abc-01"}
    assert context.client_context is not None
    assert context.client_context.custom == {"a": 1}
    assert context.client_context.client is None


def test_remaining_time_counts_down() -> None:
    readings: list[int] = []

    def handler(event: Any, context: Any) -> Any:
        readings.append(context.get_remaining_time_in_millis())
        time.sleep(0.03)
        readings.append(context.get_remaining_time_in_millis())

    invoke(handler, deadline_ms=now_ms() + 10_000)
    first, second = readings
    assert 9_000 < first <= 10_000
    assert first - second >= 25
    assert second > 0


def test_remaining_time_is_zero_after_the_deadline() -> None:
    context = capture_context(deadline_ms=now_ms() + 20)
    assert context.get_remaining_time_in_millis() <= 20
    time.sleep(0.05)
    assert context.get_remaining_time_in_millis() == 0
    assert capture_context(deadline_ms=0).get_remaining_time_in_millis() == 0


def test_identity_and_client_context_are_parsed() -> None:
    identity = json.dumps({"cognitoIdentityId": "eu-west-1:abc", "cognitoIdentityPoolId": "eu-west-1:pool"})
    client_context = json.dumps({
        "client": {"installation_id": "inst-1", "app_title": "Shop", "app_version_name": "1.2",
                   "app_version_code": "12", "app_package_name": "com.example.shop"},
        "custom": {"tenant": "t1"},
        "env": {"platform": "Android"},
    })
    context = capture_context(cognito_identity=identity, client_context=client_context)
    assert context.identity is not None
    assert context.identity.cognito_identity_id == "eu-west-1:abc"
    assert context.identity.cognito_identity_pool_id == "eu-west-1:pool"
    assert context.client_context is not None
    client = context.client_context.client
    assert client is not None
    assert (client.installation_id, client.app_title, client.app_version_name, client.app_version_code,
            client.app_package_name) == ("inst-1", "Shop", "1.2", "12", "com.example.shop")
    assert context.client_context.custom == {"tenant": "t1"}
    assert context.client_context.env == {"platform": "Android"}


def test_a_client_context_without_a_client_object() -> None:
    context = capture_context(client_context='{"custom": [1]}')
    assert context.client_context is not None
    assert context.client_context.client is None
    assert context.client_context.custom == [1]


@pytest.mark.parametrize("raw", ["", "null"])
def test_an_empty_or_null_header_is_absent(raw: str) -> None:
    context = capture_context(cognito_identity=raw, client_context=raw)
    assert context.identity.cognito_identity_id is None
    assert context.client_context is None


@pytest.mark.parametrize(
    ("header", "name"), [("client_context", "Client Context"), ("cognito_identity", "Cognito Identity")],
)
@pytest.mark.parametrize(
    "raw", ["not json", "{", "[1, 2]", '"a string"', "42", "[" * 100_000, '{"a":' * 3_000],
)
def test_a_malformed_json_header_is_a_context_unmarshal_error(header: str, name: str, raw: str) -> None:
    called: list[Any] = []
    error = error_of(invoke(lambda event, context: called.append(event), **{header: raw}))
    assert error["errorType"] == "Runtime.LambdaContextUnmarshalError"
    assert error["errorMessage"].startswith(f"Unable to parse {name} JSON: ")
    assert called == []


def test_a_client_that_is_not_an_object_is_a_context_unmarshal_error() -> None:
    error = error_of(invoke(echo, client_context='{"client": "not an object"}'))
    assert error["errorType"] == "Runtime.LambdaContextUnmarshalError"


# -- any event body --------------------------------------------------------------------------------------------

_json_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
_json_value = st.recursive(
    _json_scalar, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=10,
)
_bodies = st.one_of(
    st.binary(max_size=200),
    _json_value.map(lambda value: json.dumps(value).encode()),
    _json_value.map(lambda value: json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.text(alphabet='[]{}",:0123456789.eE-+ truefalsn\\u', max_size=60).map(str.encode),
    st.sampled_from([b"NaN", b"-Infinity", b'"\\ud800"', b"\xef\xbb\xbf{}", b"[" * 5000 + b"]" * 5000]),
)


@settings(max_examples=200, deadline=None)
@given(body=_bodies)
def test_any_body_gives_exactly_one_valid_reply_for_the_echo_handler(body: bytes) -> None:
    frame = invoke(echo, body)  # exactly one frame, for this request
    if frame.type == "result":
        echoed = json.loads(frame.payload.decode("utf-8"))
        if body.strip() == b"":
            assert echoed == {}
    else:
        error = error_of(frame)
        assert error["errorType"] in ("Runtime.UnmarshalError", "Runtime.MarshalError")


# -- the direct path, and limits that hold behind HTTP sources too ------------------------------------------------

EVENTS = Path(__file__).parents[1] / "events"


def invoke_with(invoker: Invoker, event: bytes) -> tuple[dict[str, Any], bytes]:
    """One invocation through an Invoker built by the test: the reply's header and payload."""
    (frame,) = FrameDecoder().feed(invoker(InvokeMessage("req-1", 2**45), event))
    return frame.header, frame.payload


def test_the_direct_path_is_unchanged() -> None:
    def handler(event: Any, context: Any) -> Any:
        return {"event": event, "source": context.event_source}

    invoker = Invoker(handler, FunctionInfo("f", "$LATEST", 128, "", ""), 6 * 1024 * 1024)
    header, payload = invoke_with(invoker, b'{"a": 1}')
    assert header == {"type": "result", "request_id": "req-1"}
    assert json.loads(payload) == {"event": {"a": 1}, "source": "direct"}
    header, payload = invoke_with(invoker, b"")
    assert json.loads(payload) == {"event": {}, "source": "direct"}


def test_an_oversized_proxy_response_is_still_refused() -> None:
    def handler(event: Any, context: Any) -> Any:
        return "x" * 2000

    invoker = Invoker(handler, FunctionInfo("f", "$LATEST", 128, "", ""), 1000)
    header, payload = invoke_with(invoker, (EVENTS / "apigateway-rest.json").read_bytes())
    assert header["type"] == "error" and header["error_type"] == "Runtime.ResponseSizeTooLarge"
    assert "exceeded maximum allowed payload size" in json.loads(payload)["errorMessage"]


def test_a_decorated_async_handler_and_a_sync_wrapper_returning_a_coroutine() -> None:
    @lambda_handler(decode_base64=True)
    async def decorated(event: Any, context: Any) -> Any:
        return {"source": context.event_source}

    def wrapper(event: Any, context: Any) -> Any:
        return decorated(event, context)

    function = FunctionInfo("f", "$LATEST", 128, "", "")
    http_event = (EVENTS / "function-url.json").read_bytes()
    for handler in (decorated, wrapper):
        invoker = Invoker(handler, function, 6 * 1024 * 1024, HandlerOptions(http=True))
        header, payload = invoke_with(invoker, http_event)
        assert header["type"] == "result", payload
        assert json.loads(json.loads(payload)["body"]) == {"source": "function-url"}
        assert json.loads(invoke_with(invoker, b"{}")[1]) == {"source": "direct"}
