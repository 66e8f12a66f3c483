"""What the supervisor makes of a worker without running one: its error objects, its exit, its environment."""

from __future__ import annotations

import json
import os
import resource
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambda_supervisor.shared.printable import error_type_header, is_header_safe, log_safe
from lambda_supervisor.shared.protocol import FrameError, parse_error
from lambda_supervisor.supervisor.config import Config
from lambda_supervisor.supervisor.worker_process import describe_wait_status, worker_environment

# -- parse_error ----------------------------------------------------------------------------------------------


def test_a_good_error_object_is_accepted() -> None:
    payload = json.dumps({
        "errorType": "ValueError", "errorMessage": "bad input", "stackTrace": ['  File "app.py", line 3\n'],
        "requestId": "smuggled", "cause": {"nested": True},
    }).encode()
    assert parse_error(payload) == {
        "errorType": "ValueError", "errorMessage": "bad input", "stackTrace": ['  File "app.py", line 3\n'],
    }


def test_a_missing_stack_is_an_empty_one() -> None:
    error = parse_error(b'{"errorType": "E", "errorMessage": ""}')
    assert error == {"errorType": "E", "errorMessage": "", "stackTrace": []}


def test_unicode_survives() -> None:
    error = parse_error('{"errorType": "Ошибка", "errorMessage": "💥 \\u00e9"}'.encode())
    assert error["errorType"] == "Ошибка"
    assert error["errorMessage"] == "💥 é"


def test_a_long_error_type_is_cut() -> None:
    error = parse_error(json.dumps({"errorType": "E" * 10_000, "errorMessage": "m"}).encode())
    assert error["errorType"] == "E" * 256


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json", id="not-json"),
        pytest.param(b'{"errorType": "E", "errorMessage": "m"', id="truncated"),
        pytest.param(b'\xff\xfe{"errorType": "E"}', id="not-utf8"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"errorType"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"42", id="number"),
        pytest.param(b'{"errorMessage": "m"}', id="no-type"),
        pytest.param(b'{"errorType": "", "errorMessage": "m"}', id="empty-type"),
        pytest.param(b'{"errorType": 1, "errorMessage": "m"}', id="int-type"),
        pytest.param(b'{"errorType": null, "errorMessage": "m"}', id="null-type"),
        pytest.param(b'{"errorType": "E"}', id="no-message"),
        pytest.param(b'{"errorType": "E", "errorMessage": 5}', id="int-message"),
        pytest.param(b'{"errorType": "E", "errorMessage": ["m"]}', id="list-message"),
        pytest.param(b'{"errorType": "E", "errorMessage": "m", "stackTrace": "line"}', id="string-stack"),
        pytest.param(b'{"errorType": "E", "errorMessage": "m", "stackTrace": null}', id="null-stack"),
        pytest.param(b'{"errorType": "E", "errorMessage": "m", "stackTrace": [1]}', id="int-in-stack"),
        pytest.param(b'{"errorType": "E", "errorMessage": "m", "stackTrace": [["a"]]}', id="nested-stack"),
        pytest.param(b'{"errorType": "E", "errorMessage": "m", "stackTrace": ["a", null]}', id="null-in-stack"),
        pytest.param(b"[" * 100_000, id="deep-arrays"),
        pytest.param(b'{"a":' * 100_000, id="deep-objects"),
        pytest.param(b'{"errorType": "E", "errorMessage": "m", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                     id="deep-inside-a-good-object"),
    ],
)
def test_a_bad_error_object_is_a_frame_error(payload: bytes) -> None:
    with pytest.raises(FrameError):
        parse_error(payload)


# -- describe_wait_status --------------------------------------------------------------------------------------


def wait_status_of(child: Callable[[], None]) -> int:
    """Run ``child`` in a forked process and return its raw wait status. The child never returns into pytest."""
    pid = os.fork()
    if pid == 0:
        try:
            child()
        finally:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    return status


def exits_with(code: int) -> Callable[[], None]:
    return lambda: os._exit(code)


def killed_by(signum: int) -> Callable[[], None]:
    def child() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGSEGV and SIGABRT must not leave core files
        if signum != signal.SIGKILL:  # SIGKILL's disposition cannot be set (and is always the default)
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    return child


@pytest.mark.parametrize("code", [0, 1, 3, 137, 255])
def test_an_exit_status(code: int) -> None:
    status = wait_status_of(exits_with(code))
    assert os.WIFEXITED(status)
    assert describe_wait_status(status) == f"exit status {code}"


@pytest.mark.parametrize("signum", [signal.SIGSEGV, signal.SIGKILL, signal.SIGTERM, signal.SIGABRT])
def test_a_death_by_signal(signum: signal.Signals) -> None:
    status = wait_status_of(killed_by(signum))
    assert os.WIFSIGNALED(status)
    assert describe_wait_status(status) == f"signal {signum.name}"


def test_a_signal_without_a_name() -> None:
    signum = signal.SIGRTMIN + 1
    with pytest.raises(ValueError):
        signal.Signals(signum)  # the fallback is what is under test
    status = wait_status_of(killed_by(signum))
    assert describe_wait_status(status) == f"signal {signum}"


# -- worker_environment ----------------------------------------------------------------------------------------


def test_the_worker_environment(tmp_path: Path) -> None:
    environ = {
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
        "PATH": "/usr/bin:/bin",
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "LAMBDA_SUPERVISOR_MAX_RESPONSE_BYTES": "4096",
        "MY_APP_SETTING": "kept",
        "_HANDLER": "old.handler",
    }
    before = dict(environ)
    config = Config.load(environ, {"_HANDLER": "flag.handler", "AWS_LAMBDA_FUNCTION_NAME": "from-flag"})
    env = worker_environment(config, environ)
    assert "AWS_LAMBDA_RUNTIME_API" not in env
    assert env["_HANDLER"] == config.handler == "old.handler"
    assert env["LAMBDA_TASK_ROOT"] == str(config.task_root) == str(tmp_path.resolve())
    assert env["LAMBDA_SUPERVISOR_MAX_RESPONSE_BYTES"] == "4096"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "from-flag"  # resolved settings, not just the raw environment
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["PATH"] == "/usr/bin:/bin"
    assert env["MY_APP_SETTING"] == "kept"
    assert all(isinstance(value, str) for value in env.values())
    assert environ == before  # the supervisor's own environment is not touched


def test_the_worker_environment_from_defaults_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    environ = {"AWS_LAMBDA_RUNTIME_API": "[::1]:9001"}
    config = Config.load(environ, {"_HANDLER": "cmd.handler"})
    env = worker_environment(config, environ)
    assert "AWS_LAMBDA_RUNTIME_API" not in env
    assert env["_HANDLER"] == "cmd.handler"
    assert env["LAMBDA_TASK_ROOT"] == str(tmp_path.resolve())
    assert env["LAMBDA_SUPERVISOR_MAX_RESPONSE_BYTES"] == str(config.max_response_bytes)
    assert int(env["LAMBDA_SUPERVISOR_MAX_RESPONSE_BYTES"]) > 0


# -- user-controlled text in headers and log lines -------------------------------------------------------------


@given(st.text())
def test_any_text_becomes_a_safe_header_value_and_a_safe_log_field(text: str) -> None:
    assert is_header_safe(error_type_header(text))
    assert len(error_type_header(text)) <= 256
    safe = log_safe(text)
    assert not any(char in safe for char in "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), "nothing that ends a line"


def test_safe_names_are_kept_and_others_escaped_readably() -> None:
    assert error_type_header("Runtime.ExitError") == "Runtime.ExitError"
    assert error_type_header("") == error_type_header(None) == "Unhandled"
    assert error_type_header("Ошибка\r\n") == "\\u041e\\u0448\\u0438\\u0431\\u043a\\u0430\\r\\n"
    assert log_safe("Ошибка a\tb") == "Ошибка a\\tb", "printable non-ASCII stays readable in a log line"
