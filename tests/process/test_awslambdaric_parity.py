"""The differential suite: the same handler under awslambdaric and under lambda-supervisor, against one emulator.

Covered: results, errors, X-Ray causes, the context, init errors, log lines (logging at each level, print, stderr,
AWS Lambda Powertools' Logger and Metrics) in Text and JSON, and events from API Gateway (through Powertools'
APIGatewayRestResolver too), function URLs, ALBs, SQS, S3 and Lambda authorizers.

Each runtime is started in turn, as its own bootstrap, against the same RuntimeApiEmulator (once per log format),
with the same environment and working directory (the task root), and gets the same events
(tests/task_roots/parity/parity.py picks what to do from the event's "case"). What each posted (body bytes,
content type, error-type header, X-Ray cause) and what each logged for an error are compared. Where the two differ
on purpose, the test says exactly how, so that a new difference fails it.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import TASK_ROOTS, clean_environment
from lambda_supervisor.local.emulator.records import InvocationRecord
from lambda_supervisor.local.emulator.server import RuntimeApiEmulator

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("awslambdaric") is None or importlib.util.find_spec("aws_lambda_powertools") is None,
    reason="awslambdaric or aws-lambda-powertools not installed")

TASK_ROOT = TASK_ROOTS / "parity"
FUNCTION_NAME = "parity-function"
RUNTIMES = ("awslambdaric", "lambda-supervisor")
MANAGED_312 = "AWS_Lambda_python3.12"
FORMATS = ("Text", "JSON")
RESULT_CASES = ("dict", "list", "str", "unicode-str", "none", "int", "float", "bool", "bytes", "empty-bytes", "decimal",
                "decimal-20-digits", "decimals-nested", "decimal-nan", "namedtuple", "tuple", "nested-bytes")
ERROR_CASES = ("raise", "raise-empty", "raise-unicode", "raise-multiline", "raise-custom", "raise-chained",
               "raise-implicit-chain", "raise-nested", "unserialisable")
CHAINED = {"raise-chained": "Caused by: KeyError: 'missing'\n",
           "raise-implicit-chain": "Raised while handling: ValueError: invalid literal for int() with base 10: 'x'\n"}
CLIENT_CONTEXT = {
    "client": {"installation_id": "inst-1", "app_title": "Shop", "app_version_name": "1.2", "app_version_code": "12",
               "app_package_name": "com.example.shop"},
    "custom": {"tenant": "t1"},
    "env": {"platform": "Android"},
    "w3c": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "baggage": 3},
}
#: label -> (the event's case, extra arguments for the emulator's submit)
INVOCATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    **{case: (case, {}) for case in (*RESULT_CASES, *ERROR_CASES, "bytearray", "context-log")},
    "context-bare": ("context", {}),
    "context-full": ("context", {
        "cognito_identity": json.dumps({"cognitoIdentityId": "eu-west-1:id-1", "cognitoIdentityPoolId": "eu-west-1:p"}),
        "client_context": json.dumps(CLIENT_CONTEXT),
        "tenant_id": "tenant-42",
    }),
    "context-bad-json": ("context", {"client_context": "{not json"}),
}
EVENTS = Path(__file__).parents[1] / "events"
#: Handlers whose log lines are compared: logging at each level, print, Powertools' Logger and Metrics.
LOGGED = ("log-everything", "powertools-logger", "powertools-metrics")


def _sample(name: str, case: str, **changes: Any) -> dict[str, Any]:
    """One of tests/events/NAME.json with the case for parity.handler added (and ``changes``)."""
    return {**json.loads((EVENTS / f"{name}.json").read_text()), **changes, "case": case}


#: label -> the event (a sample of an AWS event source), for the invocations that take one.
SOURCE_EVENTS: dict[str, dict[str, Any]] = {
    "powertools-api": _sample("apigateway-rest", "powertools-api"),
    "powertools-api-raise": _sample("apigateway-rest", "powertools-api", httpMethod="GET"),
    "powertools-api-no-route": _sample("apigateway-rest", "powertools-api", path="/nowhere"),
    "apigateway-rest-as-is": _sample("apigateway-rest", "describe-event"),
    "apigateway-http-as-is": _sample("apigateway-http", "describe-event"),
    "function-url-as-is": _sample("function-url", "describe-event"),
    "alb-as-is": _sample("alb", "describe-event"),
    "apigateway-http-raise": _sample("apigateway-http", "raise"),
    "alb-raise": _sample("alb", "raise-custom"),
    "sqs-batch": _sample("sqs", "batch"),
    "s3-keys": _sample("s3", "keys"),
    "sqs-raise": _sample("sqs", "raise"),
    **{name: _sample(name, "authorize") for name in (
        "authorizer-token", "authorizer-rest-request", "authorizer-http-v1", "authorizer-http-v2",
        "authorizer-websocket")},
}
INVOCATIONS.update({case: (case, {}) for case in LOGGED})


@dataclass
class Run:
    """What one runtime posted for each invocation label, and everything it wrote to stdout."""

    records: dict[str, InvocationRecord]
    log: str

    def post(self, label: str) -> tuple[str, bytes]:
        """The outcome kind and body, with the request id replaced by a placeholder (it differs per run)."""
        record = self.records[label]
        kind, posted = record.outcome or ("none", b"")
        body = posted if isinstance(posted, bytes) else posted.body
        return kind, body.replace(record.request_id.encode(), b"<request-id>")

    def header(self, label: str, name: str) -> str | None:
        return self.records[label].outcome_headers.get(name.lower())

    def error(self, label: str) -> dict[str, Any]:
        kind, body = self.post(label)
        assert kind == "error", (label, body)
        return json.loads(body)  # type: ignore[no-any-return]


def _command(runtime: str) -> list[str]:
    if runtime == "awslambdaric":
        return [sys.executable, "-m", "awslambdaric", "parity.handler"]
    return [sys.executable, "-P", "-u", "-m", "lambda_supervisor.supervisor", "run"]  # as the bootstraps start it


def _run(runtime: str, emulator: RuntimeApiEmulator, log_format: str, log_path: Path,
         env: dict[str, str] | None = None) -> Run:
    environment = clean_environment()
    environment.update(
        AWS_LAMBDA_RUNTIME_API=emulator.address, _HANDLER="parity.handler", LAMBDA_TASK_ROOT=str(TASK_ROOT),
        PYTHONPATH=str(TASK_ROOT), AWS_LAMBDA_FUNCTION_NAME=FUNCTION_NAME, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{FUNCTION_NAME}",
        AWS_LAMBDA_LOG_STREAM_NAME="2026/01/01/[$LATEST]0123456789abcdef", AWS_LAMBDA_LOG_FORMAT=log_format,
    )
    if log_format == "JSON":  # Lambda sets the application log level with the JSON format (INFO by default)
        environment["AWS_LAMBDA_LOG_LEVEL"] = "INFO"
    environment.update(env or {})
    polls = emulator.next_poll_count
    with log_path.open("wb") as log:
        process = subprocess.Popen(_command(runtime), env=environment, cwd=TASK_ROOT, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            emulator.wait_next_polled(polls + 1, timeout=60)
            records = {label: emulator.invoke({"case": case}, wait=30, **extra)
                       for label, (case, extra) in INVOCATIONS.items()}
            records.update({label: emulator.invoke(event, wait=30) for label, event in SOURCE_EVENTS.items()})
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return Run(records, log_path.read_bytes().decode("utf-8", "replace"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Run]]:
    """Both runtimes, one after the other, against one emulator per log format."""
    folder = tmp_path_factory.mktemp("parity")
    found: dict[tuple[str, str], Run] = {}
    for log_format in FORMATS:
        with RuntimeApiEmulator(function_timeout_s=60, function_name=FUNCTION_NAME) as emulator:
            for runtime in RUNTIMES:
                found[runtime, log_format] = _run(runtime, emulator, log_format, folder / f"{runtime}-{log_format}.log")
    # on the managed Python 3.12+ runtimes (the layer's case) awslambdaric writes non-ASCII characters unescaped
    with RuntimeApiEmulator(function_timeout_s=60, function_name=FUNCTION_NAME) as emulator:
        for runtime in RUNTIMES:
            found[runtime, MANAGED_312] = _run(runtime, emulator, "JSON", folder / f"{runtime}-{MANAGED_312}.log",
                                               {"AWS_EXECUTION_ENV": MANAGED_312})
    yield found


def pair(runs: dict[tuple[str, str], Run], log_format: str = "Text") -> tuple[Run, Run]:
    return runs["awslambdaric", log_format], runs["lambda-supervisor", log_format]


# -- results ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", RESULT_CASES)
def test_results_are_posted_byte_for_byte_alike(runs: dict[tuple[str, str], Run], case: str) -> None:
    theirs, ours = pair(runs)
    assert theirs.post(case)[0] == "response"
    assert ours.post(case) == theirs.post(case)
    assert ours.header(case, "Content-Type") == theirs.header(case, "Content-Type")


def test_bytes_are_application_unknown_and_decimals_exact(runs: dict[tuple[str, str], Run]) -> None:
    _, ours = pair(runs)
    assert ours.header("bytes", "Content-Type") == "application/unknown"
    assert ours.post("bytes") == ("response", b"\x00\x01raw bytes\xff")
    assert ours.post("decimal") == ("response", b"1.10")
    assert ours.post("decimal-20-digits") == ("response", b"12345678901234567890.12345678901234567890")
    assert ours.header("dict", "Content-Type") == "application/json"


def test_a_bytearray_is_posted_raw_where_awslambdaric_fails(runs: dict[tuple[str, str], Run]) -> None:
    """A deliberate difference: awslambdaric only posts ``bytes`` raw, and a ``bytearray`` is a MarshalError."""
    theirs, ours = pair(runs)
    assert theirs.error("bytearray")["errorType"] == "Runtime.MarshalError"
    assert ours.post("bytearray") == ("response", b"raw")
    assert ours.header("bytearray", "Content-Type") == "application/unknown"


# -- errors ----------------------------------------------------------------------------------------------------


def _chain_free(error: dict[str, Any], case: str) -> dict[str, Any]:
    """Our error object without the chain entries that awslambdaric leaves out."""
    if case not in CHAINED:
        return error
    marker = error["stackTrace"].index(CHAINED[case])
    return {**error, "stackTrace": error["stackTrace"][:marker]}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_error_posts_alike_but_for_the_chain(runs: dict[tuple[str, str], Run], case: str) -> None:
    theirs, ours = pair(runs)
    expected = theirs.error(case)
    assert list(ours.error(case)) == list(expected)  # the same keys in the same order
    assert _chain_free(ours.error(case), case) == expected
    if case not in CHAINED:  # then the very bytes match
        assert ours.post(case) == theirs.post(case)
    assert ours.header(case, "Content-Type") == theirs.header(case, "Content-Type") == "application/json"


@pytest.mark.parametrize("case", ERROR_CASES)
def test_error_posts_carry_the_same_xray_cause(runs: dict[tuple[str, str], Run], case: str) -> None:
    theirs, ours = pair(runs)
    their_cause, our_cause = theirs.header(case, "Lambda-Runtime-Function-XRay-Error-Cause"), ours.header(
        case, "Lambda-Runtime-Function-XRay-Error-Cause")
    assert their_cause is not None and our_cause is not None
    assert our_cause.isascii() and "\r" not in our_cause and "\n" not in our_cause
    assert json.loads(our_cause) == json.loads(their_cause)


@pytest.mark.parametrize("case", ERROR_CASES)
def test_our_error_posts_also_name_the_error_type(runs: dict[tuple[str, str], Run], case: str) -> None:
    """A deliberate difference: the Runtime API's documented Lambda-Runtime-Function-Error-Type header, which
    awslambdaric 4.x's native client does not send."""
    theirs, ours = pair(runs)
    assert theirs.header(case, "Lambda-Runtime-Function-Error-Type") is None
    assert ours.header(case, "Lambda-Runtime-Function-Error-Type") == ours.error(case)["errorType"]


@pytest.mark.parametrize("case", CHAINED)
def test_the_chain_follows_the_exceptions_own_frames(runs: dict[tuple[str, str], Run], case: str) -> None:
    _, ours = pair(runs)
    stack = ours.error(case)["stackTrace"]
    marker = stack.index(CHAINED[case])
    assert "in _raise" in stack[marker - 1]  # the exception's own frames first, as awslambdaric has them
    assert stack[marker + 1:] and all(entry.startswith("  File ") for entry in stack[marker + 1:])


def test_custom_exception_classes_are_named_by_their_class(runs: dict[tuple[str, str], Run]) -> None:
    _, ours = pair(runs)
    assert ours.error("raise-custom")["errorType"] == "PaymentDeclined"
    assert ours.error("raise-empty") == {**ours.error("raise-empty"), "errorType": "RuntimeError", "errorMessage": ""}


# -- the unhandled-exception log line ---------------------------------------------------------------------------


def _text_event(log: str, headline: str, lines: int = 1) -> str:
    """The log event starting with ``headline``, up to its ``lines``-th newline."""
    start = log.index(headline)
    end = start
    for _ in range(lines):
        end = log.index("\n", end) + 1
    return log[start:end]


def _headline(error: dict[str, Any]) -> str:
    message = error["errorMessage"].split("\n")[0]
    return f"[ERROR] {error['errorType']}" + (f": {message}" if message else "")


@pytest.mark.parametrize("case", ERROR_CASES)
def test_the_text_error_line_is_awslambdarics(runs: dict[tuple[str, str], Run], case: str) -> None:
    theirs, ours = pair(runs, "Text")
    headline = _headline(theirs.error(case))
    expected = _text_event(theirs.log, headline, lines=2 if case == "raise-multiline" else 1)
    if case == "raise-multiline":  # a deliberate difference: on stdout a newline would split the event
        expected = expected.replace("first line\nsecond line", "first line\rsecond line", 1)
    got = _text_event(ours.log, headline)
    if case in CHAINED:
        marker = "\r" + CHAINED[case].rstrip("\n")
        assert marker in got
        got = got[:got.index(marker)] + "\n"
    assert got == expected


def _json_error_lines(log: str) -> dict[str, dict[str, Any]]:
    """The JSON error records in a log, by request id, the timestamp left out."""
    found: dict[str, dict[str, Any]] = {}
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "stackTrace" in record and "errorType" in record and "message" not in record:
            assert list(record)[:2] == ["timestamp", "level"]
            assert len(record.pop("timestamp")) == len("2026-01-01T00:00:00Z")
            found[record["requestId"]] = record
    return found


@pytest.mark.parametrize("case", ERROR_CASES)
def test_the_json_error_record_is_awslambdarics(runs: dict[tuple[str, str], Run], case: str) -> None:
    theirs, ours = pair(runs, "JSON")
    their_id, our_id = theirs.records[case].request_id, ours.records[case].request_id
    expected = {**_json_error_lines(theirs.log)[their_id], "requestId": "<request-id>"}
    got = {**_json_error_lines(ours.log)[our_id], "requestId": "<request-id>"}
    assert list(got) == list(expected)
    assert _chain_free(got, case) == expected


# -- the context -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["context-bare", "context-full"])
def test_every_context_attribute_matches_in_type_and_value(runs: dict[tuple[str, str], Run], label: str) -> None:
    theirs, ours = pair(runs)
    expected, got = json.loads(theirs.post(label)[1]), json.loads(ours.post(label)[1])
    assert got["attributes"].pop("event_source") == ["EventSource", "<EventSource.DIRECT: 'direct'>"]  # our addition
    assert got == expected
    assert got["attributes"]["memory_limit_in_mb"] == ["str", "'1024'"]
    assert got["identity"] is not None
    assert got["remaining"] == ["int", True]
    assert {"get_remaining_time_in_millis", "log", "w3c"} <= set(got["methods"])


def test_the_full_context_is_read_from_the_headers(runs: dict[tuple[str, str], Run]) -> None:
    _, ours = pair(runs)
    got = json.loads(ours.post("context-full")[1])
    assert got["attributes"]["tenant_id"] == ["str", "'tenant-42'"]
    assert got["identity"]["cognito_identity_id"] == ["str", "'eu-west-1:id-1'"]
    assert got["client"]["app_title"] == ["str", "'Shop'"]
    assert got["w3c"] == {"traceparent": CLIENT_CONTEXT["w3c"]["traceparent"]}  # type: ignore[index]
    assert "w3c" not in got["client_context"]["custom"][1]


def test_a_context_header_that_is_not_json_fails_alike(runs: dict[tuple[str, str], Run]) -> None:
    theirs, ours = pair(runs)
    assert theirs.error("context-bad-json")["errorType"] == "Runtime.LambdaContextUnmarshalError"
    assert ours.post("context-bad-json") == theirs.post("context-bad-json")


def test_context_log_writes_the_message(runs: dict[tuple[str, str], Run]) -> None:
    theirs, ours = pair(runs)
    assert ours.post("context-log") == theirs.post("context-log") == ("response", b"null")
    assert "via context.log" in theirs.log and "via context.log" in ours.log


def test_the_invoke_endpoint_decodes_the_sdks_base64_client_context(tmp_path: Path) -> None:
    """``X-Amz-Client-Context`` arrives base64-encoded, as the SDKs send it; the handler sees the decoded object."""
    import requests

    with RuntimeApiEmulator(function_timeout_s=60, function_name=FUNCTION_NAME) as emulator:
        run_log = tmp_path / "runtime.log"
        with run_log.open("wb") as log:
            environment = clean_environment()
            environment.update(AWS_LAMBDA_RUNTIME_API=emulator.address, _HANDLER="parity.handler",
                               LAMBDA_TASK_ROOT=str(TASK_ROOT), AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024")
            process = subprocess.Popen(_command("lambda-supervisor"), env=environment, cwd=TASK_ROOT, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                emulator.wait_next_polled(1, timeout=60)
                header = base64.b64encode(json.dumps(CLIENT_CONTEXT).encode()).decode()
                answer = requests.post(emulator.invoke_url, json={"case": "context"}, timeout=30,
                                       headers={"X-Amz-Client-Context": header, "X-Amz-Tenant-Id": "tenant-9"})
            finally:
                process.terminate()
                process.wait(15)
    got = answer.json()
    assert got["client"]["installation_id"] == ["str", "'inst-1'"]
    assert got["client_context"]["custom"] == ["dict", "{'tenant': 't1'}"]
    assert got["attributes"]["tenant_id"] == ["str", "'tenant-9'"]


# -- event sources: what Lambda sends reaches the handler, what it returns reaches Lambda -------------------------


@pytest.mark.parametrize("label", SOURCE_EVENTS)
def test_event_sources_get_identical_posts_by_default(runs: dict[tuple[str, str], Run], label: str) -> None:
    """API Gateway (through Powertools' resolver too), function URLs, ALBs, SQS, S3 and every kind of authorizer:
    the same post, byte for byte, as under awslambdaric; an exception behind API Gateway is an invocation error."""
    theirs, ours = pair(runs)
    assert ours.post(label) == theirs.post(label)
    assert ours.header(label, "Content-Type") == theirs.header(label, "Content-Type")
    if label.endswith("-raise"):
        assert ours.post(label)[0] == "error"
    if label.endswith("-as-is"):
        seen = json.loads(ours.post(label)[1])
        assert seen == SOURCE_EVENTS[label], "the handler saw the event exactly as sent (base64 bodies included)"


def test_powertools_resolver_answers_alike(runs: dict[tuple[str, str], Run]) -> None:
    _, ours = pair(runs)
    answer = json.loads(ours.post("powertools-api")[1])
    assert answer["statusCode"] == 200 and json.loads(answer["body"]) == {
        "order": "42", "body": SOURCE_EVENTS["powertools-api"]["body"], "verbose": "1"}
    assert json.loads(ours.post("powertools-api-no-route")[1])["statusCode"] == 404
    assert ours.error("powertools-api-raise")["errorMessage"] == "order 42 exploded"
    assert json.loads(ours.post("authorizer-http-v2")[1]) == {"isAuthorized": True, "context": {"user": "user-1"}}


# -- log lines --------------------------------------------------------------------------------------------------

#: Timestamps differ between runs: ISO (Lambda's, to the millisecond or the second), Powertools', EMF's.
_TIMESTAMPS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}[+-]\d{4}"
                         r'|(?<="Timestamp":)\s*\d+')
_TRACE_IDS = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}")


def _segment(run: Run, label: str) -> list[str]:
    """The log lines a handler wrote between its markers, as CloudWatch events split on "\\n" (our "\\r" inside
    a record is a newline in awslambdaric's stdout), empty lines left out, with placeholders for the request id,
    timestamps and trace ids."""
    start = run.log.index(f"==> {label}\n")
    end = run.log.index(f"<== {label}\n", start)
    text = run.log[start:end].replace("\r", "\n").replace(run.records[label].request_id, "<request-id>")
    text = _TRACE_IDS.sub("<trace-id>", _TIMESTAMPS.sub("<time>", text))
    return [line for line in text.split("\n") if line]


@pytest.mark.parametrize("log_format", FORMATS)
@pytest.mark.parametrize("label", LOGGED)
def test_log_lines_alike(runs: dict[tuple[str, str], Run], log_format: str, label: str) -> None:
    """logging at each level, print and stderr, Powertools' Logger (its JSON not double-encoded) and Metrics (its
    EMF line as that object): the same lines, but for timestamps, in Text and in JSON."""
    theirs, ours = pair(runs, log_format)
    assert _segment(ours, label) == _segment(theirs, label)


def test_powertools_lines_reach_the_log_as_their_objects(runs: dict[tuple[str, str], Run]) -> None:
    for log_format in FORMATS:
        _, ours = pair(runs, log_format)
        lines = _segment(ours, "powertools-metrics")
        emf = json.loads(next(line for line in lines if line.startswith('{"_aws"')).replace("<time>", "0"))
        assert emf["Orders"] == [2.0] or emf["Orders"] == 2.0
        assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Parity" and emf["channel"] == "web"
        logged = [json.loads(line) for line in _segment(ours, "powertools-logger") if line.startswith("{")]
        assert logged[0]["message"] == "from powertools" and logged[0]["function_request_id"] == "<request-id>"
        assert logged[1]["message"] == {"structured": True}


def test_text_records_in_lambdas_layout(runs: dict[tuple[str, str], Run]) -> None:
    _, ours = pair(runs, "Text")
    lines = _segment(ours, "log-everything")
    assert "[WARNING]\t<time>\t<request-id>\twarning record 7" in lines
    assert "[INFO]\t<time>\t<request-id>\t{'structured': True, 'n': 1}" in lines
    assert "printed line" in lines and "to stderr" in lines and "two" in lines
    # a deliberate difference on stdout: a record is one CloudWatch event, its inner newlines written as \r
    theirs, _ = pair(runs, "Text")
    assert "\twith a traceback\rTraceback (most recent call last):\r" in ours.log
    assert "\twith a traceback\nTraceback (most recent call last):\n" in theirs.log


# -- init errors -----------------------------------------------------------------------------------------------


def _init_failure(runtime: str, task_root: Path, handler: str, log_path: Path) -> tuple[bytes, str | None, str]:
    """The init error one runtime posts for ``handler`` (each against an emulator of its own: an init error stays
    with the emulator), its type header, and the runtime's log."""
    with RuntimeApiEmulator(function_timeout_s=60, function_name=FUNCTION_NAME) as emulator, log_path.open("wb") as log:
        environment = clean_environment()
        environment.update(AWS_LAMBDA_RUNTIME_API=emulator.address, _HANDLER=handler, LAMBDA_TASK_ROOT=str(task_root),
                           PYTHONPATH=str(task_root), AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024")
        command = [*_command(runtime)[:-1], handler] if runtime == "awslambdaric" else _command(runtime)
        process = subprocess.Popen(command, env=environment, cwd=task_root, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        try:
            posted = emulator.wait_init_error(timeout=60)
            assert process.wait(30) != 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return posted.body, posted.error_type_header, log_path.read_text(errors="replace")


@pytest.mark.parametrize(("task_root", "handler"), [
    (TASK_ROOT, "nosuchmodule.handler"), (TASK_ROOT, "parity.no_such_function"),
    (TASK_ROOTS / "init_errors", "syntax_error.handler"), (TASK_ROOTS / "init_errors", "imports_missing.handler"),
])
def test_init_errors_are_posted_and_logged_alike(tmp_path: Path, task_root: Path, handler: str) -> None:
    their_body, their_type, their_log = _init_failure("awslambdaric", task_root, handler, tmp_path / "ric.log")
    our_body, our_type, our_log = _init_failure("lambda-supervisor", task_root, handler, tmp_path / "ours.log")
    assert our_type == their_type == json.loads(their_body)["errorType"]
    error_line = _text_event(their_log, "[ERROR] ")
    if handler != "imports_missing.handler":
        assert our_body == their_body
        assert error_line in our_log
        return
    # a deliberate difference: the frames of the user's module that led to the ImportError are kept
    theirs, ours = json.loads(their_body), json.loads(our_body)
    assert theirs["stackTrace"] == [] and "imports_missing.py" in ours["stackTrace"][-1]
    assert {**ours, "stackTrace": []} == theirs
    assert error_line.rstrip("\n") in our_log


# -- on the managed Python 3.12+ runtimes ------------------------------------------------------------------------


@pytest.mark.parametrize("case", RESULT_CASES)
def test_results_on_a_managed_312_runtime_are_alike(runs: dict[tuple[str, str], Run], case: str) -> None:
    theirs, ours = pair(runs, MANAGED_312)
    assert ours.post(case) == theirs.post(case)
    if case == "unicode-str":
        assert ours.post(case) == ("response", '"h\u00e9llo \u2713"'.encode())


@pytest.mark.parametrize("case", ERROR_CASES)
def test_errors_on_a_managed_312_runtime_are_alike(runs: dict[tuple[str, str], Run], case: str) -> None:
    """The same error objects and log records; a deliberate difference: our error posts and X-Ray causes stay
    ASCII JSON (non-ASCII as \\u escapes), where awslambdaric writes UTF-8 there, in the header too."""
    theirs, ours = pair(runs, MANAGED_312)
    assert _chain_free(ours.error(case), case) == theirs.error(case)
    their_id, our_id = theirs.records[case].request_id, ours.records[case].request_id
    expected = {**_json_error_lines(theirs.log)[their_id], "requestId": "<request-id>"}
    assert _chain_free({**_json_error_lines(ours.log)[our_id], "requestId": "<request-id>"}, case) == expected
    assert ours.post(case)[1].isascii()
