"""Init failures, shutdown, process hygiene and isolation, and a Runtime API that goes away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from conftest import (
    FAULTS,
    TASK_ROOTS,
    StartRuntime,
    clean_environment,
    free_port,
    post_when_listening,
    process_gone,
    wait_for,
)
from lambda_supervisor.supervisor.exit_codes import ExitCode

INIT_ERRORS = TASK_ROOTS / "init_errors"


@pytest.mark.parametrize(
    ("handler", "error_type", "message_part"),
    [
        ("nodot", "Runtime.MalformedHandlerName", "Bad handler 'nodot'"),
        ("no_such_module.handler", "Runtime.ImportModuleError", "Unable to import module 'no_such_module'"),
        ("imports_missing.handler", "Runtime.ImportModuleError", "a_module_that_does_not_exist"),
        ("syntax_error.handler", "Runtime.UserCodeSyntaxError", "Syntax error in module 'syntax_error'"),
        ("import_raises.handler", "ZeroDivisionError", "division by zero"),
        ("not_callable.handler", "Runtime.HandlerNotFound", "is not callable"),
        ("import_raises.nothing_here", "ZeroDivisionError", "division by zero"),
        ("syntax_error.handler.extra", "Runtime.UserCodeSyntaxError", "Syntax error in module 'syntax_error.handler'"),
        ("not_callable.handler.extra", "Runtime.ImportModuleError", "'not_callable' is not a package"),
        ("import_exits.handler", "Runtime.ExitError", "exit status 7"),
    ],
)
def test_init_errors_are_posted_to_init_error_and_the_runtime_exits(
    start_runtime: StartRuntime, handler: str, error_type: str, message_part: str
) -> None:
    runtime = start_runtime(handler, task_root=INIT_ERRORS, wait_ready=False)
    posted = runtime.emulator.wait_init_error(60)
    assert posted.error_type == error_type, posted.describe()
    assert posted.error_type_header == error_type
    assert message_part in (posted.error_message or ""), posted.describe()
    assert posted.error is not None
    assert not any("lambda_supervisor" in line or "importlib" in line for line in posted.error["stackTrace"])
    assert runtime.wait_exit() == ExitCode.INIT_FAILED
    assert runtime.emulator.next_poll_count == 0, "no event may be taken before init succeeded"
    # like Lambda, an invocation arriving after a failed init is answered with the init error
    assert runtime.emulator.invoke({}, wait=10).error.error_type == error_type


def test_missing_handler_attribute_is_handler_not_found(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.no_such_function", wait_ready=False)
    posted = runtime.emulator.wait_init_error(60)
    assert posted.error_type == "Runtime.HandlerNotFound"
    assert "Handler 'no_such_function' missing on module 'faults'" in (posted.error_message or "")
    assert runtime.wait_exit() == ExitCode.INIT_FAILED


@pytest.mark.parametrize("value", ["lots", "AWS_LAMBDA_RUNTIME_API"])
def test_invalid_setting_names_the_variable_and_is_reported(start_runtime: StartRuntime, value: str) -> None:
    """Reported whatever the bad value says: only a bad Runtime API address itself goes unreported."""
    runtime = start_runtime(env={"LAMBDA_SUPERVISOR_MAX_RSS_MB": value}, wait_ready=False)
    posted = runtime.emulator.wait_init_error(60)
    assert posted.error_type == "Runtime.InvalidConfiguration"
    assert "LAMBDA_SUPERVISOR_MAX_RSS_MB" in (posted.error_message or "")
    assert runtime.wait_exit() == ExitCode.CONFIG_ERROR
    assert f"LAMBDA_SUPERVISOR_MAX_RSS_MB={value!r} is invalid" in runtime.log()


def test_sigterm_when_idle_stops_everything_and_exits_zero(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.spawn_children")
    pids = runtime.invoke().json()
    for pid in pids.values():
        assert psutil.pid_exists(pid)
    runtime.process.send_signal(signal.SIGTERM)
    assert runtime.wait_exit() == ExitCode.OK
    for name, pid in pids.items():
        assert process_gone(pid), f"the {name} process {pid} outlived the supervisor"


def test_sigterm_mid_invocation_answers_the_request_and_exits(start_runtime: StartRuntime, tmp_path: Path) -> None:
    runtime = start_runtime("faults.ignore_sigterm_and_block", env={"LAMBDA_SUPERVISOR_SHUTDOWN_GRACE_MS": "300"})
    pid_file = tmp_path / "pid"
    request_id = runtime.emulator.submit({"pid_file": str(pid_file)})
    worker_pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), what="the handler to start"))
    runtime.process.send_signal(signal.SIGTERM)
    record = runtime.emulator.wait_outcome(request_id, 30)
    assert record.error.error_type == "Runtime.ExitError"
    assert "shutting down" in (record.error.error_message or "")
    assert runtime.wait_exit() == ExitCode.OK
    assert process_gone(worker_pid)
    assert len(runtime.emulator.record(request_id).posts) == 1


def test_a_handlers_children_die_with_its_worker(start_runtime: StartRuntime) -> None:
    """Including a child that left the worker's process group with setsid."""
    runtime = start_runtime("faults.spawn_children", env={"LAMBDA_SUPERVISOR_MAX_INVOCATIONS": "1"})
    first = runtime.invoke().json()
    second = runtime.invoke().json()  # the first worker was recycled before this one started
    assert second["worker"] != first["worker"]
    for name in ("worker", "child", "escaped"):
        assert process_gone(first[name]), f"{name} {first[name]} of the recycled worker is still there"
    for name in ("worker", "child", "escaped"):  # recycled too, after its one invocation
        assert process_gone(second[name]), f"{name} {second[name]} of the second worker is still there"


def test_the_worker_is_isolated_from_the_supervisor(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.inspect_isolation")
    view = runtime.invoke().json()
    assert view["runtime_api"] is None, "the worker must not learn the Runtime API address"
    assert view["pgid_is_pid"] and view["sid_is_pid"], "the worker leads its own session and process group"
    extra = {int(fd): kind for fd, kind in view["fds"].items() if int(fd) > 2}
    # the two pipe ends, and the shared-memory region large payloads cross (close-on-exec, as the pipe ends are)
    assert sorted(extra.values()) in (["fifo", "fifo"], ["fifo", "fifo", "region"]), (
        f"only the two pipe ends and the region may be inherited, got {extra}")


def test_a_dead_runtime_api_makes_the_supervisor_exit_after_retrying(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.echo", env={"LAMBDA_SUPERVISOR_API_RETRY_S": "1"})
    runtime.emulator.stop()
    assert runtime.wait_exit(60) == ExitCode.RUNTIME_API_GONE
    log = runtime.log()
    assert "runtime api fault, retrying" in log
    assert "runtime api gone, exiting" in log


def test_serve_answers_the_aws_invoke_endpoint(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "lambda_supervisor.supervisor", "serve", "faults.echo",
         "--task-root", str(FAULTS), "--port", str(port), "--timeout", "5"],
        env=clean_environment(), stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"


    try:
        response = post_when_listening(url, b'{"number": 5}')
        assert response.status_code == 200
        assert response.json()["event"] == {"number": 5}
        bad = requests.post(url, data=b"{oops", timeout=30)
        assert bad.headers.get("X-Amz-Function-Error") == "Unhandled"
        assert bad.json()["errorType"] == "Runtime.UnmarshalError"
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(30) == 0
        log.close()


def test_demo_runs_every_fault_on_one_instance() -> None:
    result = subprocess.run([sys.executable, "-m", "lambda_supervisor.supervisor", "demo"],
                            env=clean_environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 of 8 invocations ended as expected; the runtime survived them all." in result.stdout
    assert '"_aws"' not in result.stdout + result.stderr, "readable output: no metric objects unless asked for"


def test_unknown_environment_does_not_leak_runtime_api_via_os_environ() -> None:
    """Sanity check on the fixture itself: tests do not pass this machine's Lambda variables through."""
    os.environ["AWS_LAMBDA_RUNTIME_API"] = "127.0.0.1:9"
    try:
        assert "AWS_LAMBDA_RUNTIME_API" not in clean_environment()
    finally:
        del os.environ["AWS_LAMBDA_RUNTIME_API"]
