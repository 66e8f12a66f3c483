"""Every fault a handler can commit, end to end: the request gets one clear error, the instance lives on.

Each test runs the real bootstrap process against the emulator; after each fault the next invocation must succeed
on the same supervisor process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from conftest import TASK_ROOTS, StartRuntime, clean_environment, process_dead, process_gone, wait_for
from lambda_supervisor.supervisor.exit_codes import ExitCode


def assert_recovers(runtime, old_pid: int | None = None) -> int:
    """The next invocation succeeds on the same supervisor; returns the worker pid that served it."""
    record = runtime.invoke({"after": "fault"})
    assert record.outcome_kind == "response", record.describe()
    new_pid = record.json()["pid"]
    if old_pid is not None:
        assert new_pid != old_pid, "the faulty worker should have been replaced"
    assert runtime.alive(), "the supervisor must survive the fault"
    return new_pid


def test_success_returns_the_handler_result_with_a_full_context(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.echo")
    record = runtime.invoke({"number": 5}, trace_id="Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
                            cognito_identity='{"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}',
                            client_context='{"custom": {"tenant": "t1"}}')
    result = record.json()
    assert result["event"] == {"number": 5}
    assert result["request_id"] == record.request_id
    assert result["function_name"] == "test-function"
    assert result["memory_limit_in_mb"] == "1024"  # a str, as in awslambdaric
    assert result["invoked_function_arn"].endswith(":function:test-function")
    assert 0 < result["remaining_ms"] <= 10_000
    assert result["trace_id"] == "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    assert result["identity"] == "id-1"
    assert result["client_custom"] == {"tenant": "t1"}


def test_empty_event_is_an_empty_object(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.echo")
    assert runtime.invoke(b"").json()["event"] == {}


def test_event_metadata_too_large_to_frame_is_an_error_post_and_the_worker_stays_warm(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.echo")
    first_pid = runtime.invoke({}).json()["pid"]
    record = runtime.invoke({"number": 1}, client_context='{"custom": {"blob": "' + "x" * 70_000 + '"}}')
    assert record.error.error_type == "Runtime.EventMetadataTooLarge", record.describe()
    assert record.request_id in (record.error.error_message or "")
    assert runtime.alive()
    assert runtime.invoke({}).json()["pid"] == first_pid, "the worker never saw the event: it stays warm"
    assert "worker replaced" not in runtime.log()


def test_handler_exception_is_reported_and_the_worker_stays_warm(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.raise_error")
    first = runtime.invoke({"detail": 42})
    assert first.error.error_type == "ValueError"
    assert first.error.error_type_header == "ValueError"
    assert first.error.error_message == "bad value: 42"
    assert first.error.error is not None and first.error.error["requestId"] == first.request_id
    stack = first.error.error["stackTrace"]
    assert stack and "faults.py" in stack[0], stack
    assert not any("lambda_supervisor" in line for line in stack), "our own frames do not belong in the stack"
    second = runtime.invoke({"detail": 43})
    assert second.error.error_message == "bad value: 43"
    assert runtime.alive()
    assert "worker replaced" not in runtime.log()
    assert runtime.log().count("worker ready") == 1, "an exception must not cost a respawn"


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("faults.segfault", "signal SIGSEGV"),
        ("faults.os_exit", "exit status 3"),
        ("faults.sys_exit", "exit status 4"),
    ],
)
def test_worker_death_is_an_exit_error_and_the_worker_is_respawned(
    start_runtime: StartRuntime, handler: str, message: str
) -> None:
    runtime = start_runtime(handler)
    record = runtime.invoke()
    assert record.error.error_type == "Runtime.ExitError"
    assert message in (record.error.error_message or "")
    assert record.request_id in (record.error.error_message or "")
    # the same handler crashes again on a fresh worker, and again the instance survives
    assert runtime.invoke().error.error_type == "Runtime.ExitError"
    assert runtime.alive()
    log = runtime.log()
    assert log.count("worker replaced: reason=crash") == 2
    assert f"request_id={record.request_id}" in log


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGSEGV, signal.SIGTERM])
def test_a_worker_killed_while_idle_costs_no_request(start_runtime: StartRuntime, signum: int) -> None:
    runtime = start_runtime("faults.echo")
    pid = runtime.invoke().json()["pid"]
    psutil.Process(pid).send_signal(signum)
    wait_for(lambda: process_dead(pid), what="the worker to die")
    pid = assert_recovers(runtime, pid)
    assert "worker replaced: reason=died-while-idle" in runtime.log()


def test_sigkill_from_outside_mid_invocation(start_runtime: StartRuntime, tmp_path: Path) -> None:
    runtime = start_runtime("faults.block")
    pid_file = tmp_path / "pid"
    request_id = runtime.emulator.submit({"pid_file": str(pid_file)})
    worker_pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), what="the handler to start"))
    psutil.Process(worker_pid).kill()
    record = runtime.emulator.wait_outcome(request_id, 30)
    assert record.error.error_type == "Runtime.ExitError"
    assert "signal SIGKILL" in (record.error.error_message or "")
    assert len(record.posts) == 1
    second_file = tmp_path / "pid2"
    request_id = runtime.emulator.submit({"pid_file": str(second_file)})
    new_pid = int(wait_for(lambda: second_file.exists() and second_file.read_text(), what="a new worker"))
    assert new_pid != worker_pid and runtime.alive()


def test_hang_past_the_deadline_is_killed_at_the_deadline(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.hang", timeout_s=1.0)
    record = runtime.invoke()
    assert record.error.error_type == "Runtime.Timeout"
    message = record.error.error_message or ""
    assert re.search(r"Task timed out after (0\.9\d|1\.\d\d) seconds", message), record.describe()
    log = runtime.log()
    assert "worker replaced: reason=timeout" in log
    killed = int(re.search(r"reason=timeout .*old_pid=(\d+)", log).group(1))  # type: ignore[union-attr]
    assert process_gone(killed)
    assert 'in hang' in log and "faults.py" in log, "the hung worker's stack is dumped before the kill"
    assert runtime.invoke().error.error_type == "Runtime.Timeout"  # a fresh worker, timed out again
    assert runtime.alive()


def test_memory_blowup_is_killed_at_the_rss_limit(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.blow_memory", env={"LAMBDA_SUPERVISOR_MAX_RSS_MB": "150"})
    record = runtime.invoke()
    assert record.error.error_type == "Runtime.OutOfMemory"
    assert "> 150 MB" in (record.error.error_message or "")
    match = re.search(r"reason=out-of-memory .*peak_rss_mb=([\d.]+)", runtime.log())
    assert match and float(match.group(1)) > 150
    assert runtime.invoke().error.error_type == "Runtime.OutOfMemory"
    assert runtime.alive()


def test_memory_error_in_the_handler_is_reported_and_the_worker_replaced(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.raise_memory_error")
    record = runtime.invoke()
    assert record.error.error_type == "MemoryError"
    assert record.error.error_message == "pretend the heap ran out"
    assert runtime.invoke().error.error_type == "MemoryError"
    assert runtime.log().count("worker replaced: reason=memory-error") == 2


def test_recycle_after_n_invocations_changes_the_pid_exactly_every_n(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.pid", env={"LAMBDA_SUPERVISOR_MAX_INVOCATIONS": "3"})
    pids = [runtime.invoke().json() for _ in range(9)]
    assert pids[0] == pids[1] == pids[2]
    assert pids[3] == pids[4] == pids[5]
    assert pids[6] == pids[7] == pids[8]
    assert len({pids[0], pids[3], pids[6]}) == 3
    assert runtime.log().count("worker replaced: reason=recycle-max-invocations") == 3


def test_invalid_json_event_is_an_unmarshal_error(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.echo")
    pid = runtime.invoke().json()["pid"]
    record = runtime.invoke(b"{not json")
    assert record.error.error_type == "Runtime.UnmarshalError"
    assert "Unable to unmarshal input" in (record.error.error_message or "")
    assert runtime.invoke().json()["pid"] == pid, "a bad event is not the worker's fault"


def test_unserialisable_result_is_a_marshal_error(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.unserialisable")
    record = runtime.invoke()
    assert record.error.error_type == "Runtime.MarshalError"
    assert "set is not JSON serializable" in (record.error.error_message or "")


def test_oversize_result_is_refused_and_the_worker_stays(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.big_result")
    first = runtime.invoke()
    assert first.error.error_type == "Runtime.ResponseSizeTooLarge"
    assert "exceeded maximum allowed payload size" in (first.error.error_message or "")
    assert runtime.invoke().error.error_type == "Runtime.ResponseSizeTooLarge"
    assert "worker replaced" not in runtime.log()


@pytest.mark.parametrize(
    ("handler", "error_type", "detail"),
    [
        ("faults.write_huge_frame", "Runtime.ResponseSizeTooLarge", "2147483648 bytes"),
        ("faults.write_garbage", "Runtime.InvalidWorkerMessage", "bad frame prefix"),
        ("faults.close_pipe", "Runtime.InvalidWorkerMessage", "closed its pipe"),
    ],
)
def test_a_hostile_worker_is_killed_and_the_supervisor_stays_up(
    start_runtime: StartRuntime, handler: str, error_type: str, detail: str
) -> None:
    runtime = start_runtime(handler)
    record = runtime.invoke()
    assert record.error.error_type == error_type
    assert detail in (record.error.error_message or ""), record.describe()
    assert runtime.invoke().error.error_type == error_type  # again, on a fresh worker
    assert runtime.alive()
    assert runtime.log().count("worker replaced") == 2


def test_user_modules_named_like_ours_are_not_shadowed(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("app.handler", task_root=TASK_ROOTS / "shadowing")
    assert runtime.invoke().json() == {
        "shared": "user shared package",
        "util": "user shared.util",
        "worker": "user worker module",
        "supervisor": "user supervisor module",
    }


def test_dir_slash_module_handler_form(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults/faults.pid", task_root=TASK_ROOTS)
    assert isinstance(runtime.invoke().json(), int)


# -- user-controlled names in headers and log lines ------------------------------------------------------------

FORGED_LINE = "\r\n2026-01-01T00:00:00.000Z\tINFO\tlambda-supervisor\tREPORT RequestId: forged"


def _header_safe(value: str | None) -> bool:
    return value is not None and all(" " <= char <= "~" for char in value)


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("Ошибка", "\\u041e\\u0448\\u0438\\u0431\\u043a\\u0430"),
        ("Boom\r\nX-Injected: yes", "Boom\\r\\nX-Injected: yes"),
        ("Boom" + FORGED_LINE,
         "Boom\\r\\n2026-01-01T00:00:00.000Z\\tINFO\\tlambda-supervisor\\tREPORT RequestId: forged"),
    ],
    ids=["cyrillic", "crlf-header-injection", "forged-log-line"],
)
def test_an_exception_class_name_cannot_break_the_error_post(start_runtime: StartRuntime, name: str,
                                                              header: str) -> None:
    """The class name is user code's: in the header it is escaped to printable ASCII, the body keeps it as it is,
    and the supervisor's log lines cannot be split by it."""
    runtime = start_runtime("faults.raise_named")
    record = runtime.invoke({"name": name, "message": "line one\r\nline two"})
    assert record.error.error_type == name, record.describe()
    assert record.error.error_message == "line one\r\nline two"
    assert record.error.error_type_header == header
    assert _header_safe(record.error.error_type_header)
    assert runtime.alive()
    assert runtime.invoke({"name": "ValueError"}).error.error_type == "ValueError"  # the same warm worker
    log = runtime.log()
    assert "worker replaced" not in log
    # A newline starts a log event; the handler's own [ERROR] line writes the name's CR/LF as \r, as awslambdaric
    # does, which CloudWatch shows inside the one event. No event may start with a forged timestamp or header, and
    # the forged text stands only inside that [ERROR] event or escaped in a supervisor line.
    for event in log.split("\n"):
        assert not event.startswith(("2026-01-01", "X-Injected")), event
        if "RequestId: forged" in event.replace("\\tREPORT RequestId: forged", ""):
            assert event.startswith("[ERROR] Boom\r2026-01-01"), event


def test_an_init_error_with_a_hostile_class_name_is_still_posted(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("import_raises_named.handler", task_root=TASK_ROOTS / "init_errors", wait_ready=False)
    posted = runtime.emulator.wait_init_error(60)
    assert posted.error_type == "Ошибка\r\nX-Injected: yes", posted.describe()
    assert posted.error_type_header == "\\u041e\\u0448\\u0438\\u0431\\u043a\\u0430\\r\\nX-Injected: yes"
    assert runtime.wait_exit() == ExitCode.INIT_FAILED
    assert not any(event.startswith("X-Injected") for event in runtime.log().split("\n"))  # \r stays in its event


# -- a reply frame outside its invocation is charged to the invocation that sent it ---------------------------


def _assert_innocent_requests_succeed(runtime, count: int = 3) -> list[int]:
    pids = []
    for _ in range(count):
        record = runtime.invoke({"action": "ok"})
        assert record.outcome_kind == "response", record.describe()
        pids.append(record.json()["pid"])
    return pids


STRATEGIES = ["spare", "fork", "fresh"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_forked_child_returning_into_the_worker_loop_neither_replies_nor_breaks_the_worker(
        start_runtime: StartRuntime, strategy: str) -> None:
    runtime = start_runtime("faults.act", env={"LAMBDA_SUPERVISOR_RESPAWN": strategy})
    guilty = runtime.invoke({"action": "fork_and_return"})
    assert guilty.outcome_kind == "response", guilty.describe()
    worker_pid = guilty.json()["pid"]
    assert _assert_innocent_requests_succeed(runtime) == [worker_pid] * 3, "the worker stays warm"
    assert "InvalidWorkerMessage" not in runtime.log()
    assert runtime.alive()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_second_reply_frame_is_the_fault_of_the_request_that_wrote_it(start_runtime: StartRuntime,
                                                                         strategy: str) -> None:
    runtime = start_runtime("faults.act", env={"LAMBDA_SUPERVISOR_RESPAWN": strategy})
    guilty = runtime.invoke({"action": "double_reply"})
    assert guilty.outcome_kind == "response", guilty.describe()  # its own (forged) answer: its own business
    _assert_innocent_requests_succeed(runtime)
    log = runtime.log()
    assert "InvalidWorkerMessage" not in log
    assert f"worker replaced: reason=stray-frame request_id={guilty.request_id}" in log
    assert runtime.alive()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_late_stray_reply_during_the_next_request_blames_the_earlier_one(start_runtime: StartRuntime,
                                                                           tmp_path: Path, strategy: str) -> None:
    """A child of request A writes a reply for A while request B runs: A is named, B is served on a fresh
    worker."""
    runtime = start_runtime("faults.act", env={"LAMBDA_SUPERVISOR_RESPAWN": strategy})
    guilty = runtime.invoke({"action": "stray_later", "dir": str(tmp_path)})
    assert guilty.outcome_kind == "response", guilty.describe()
    innocent = runtime.invoke({"action": "let_stray_in", "dir": str(tmp_path)})
    assert innocent.outcome_kind == "response", innocent.describe()
    assert innocent.json()["pid"] != guilty.json()["pid"], "served again, on a fresh worker"
    log = runtime.log()
    assert f"guilty_request_id={guilty.request_id} request_id={innocent.request_id}" in log
    assert f"worker replaced: reason=stray-frame request_id={guilty.request_id}" in log
    _assert_innocent_requests_succeed(runtime)
    assert runtime.alive()


# -- nothing in the task root shadows the runtime's own imports ------------------------------------------------

SHADOWING_DEPS = TASK_ROOTS / "shadowing_deps"
REPOSITORY = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("entry_point", ["python -m", "console script", "docker/bootstrap"])
def test_user_modules_named_like_the_runtimes_dependencies_do_not_shadow_them(
        start_runtime: StartRuntime, entry_point: str) -> None:
    """The task root (also the working directory, as on Lambda) holds tenacity.py, loguru.py, psutil.py,
    httptools.py and requests.py, each raising on import: the supervisor must not see them, the handler works."""
    command = {
        "python -m": [sys.executable, "-m", "lambda_supervisor.supervisor", "run"],
        "console script": [str(BIN / "lambda-supervisor"), "run"],
        "docker/bootstrap": ["sh", str(REPOSITORY / "docker" / "bootstrap")],
    }[entry_point]
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # the bootstrap's python3 is ours
    runtime = start_runtime("app.handler", task_root=SHADOWING_DEPS, command=command, cwd=SHADOWING_DEPS, env=env)
    record = runtime.invoke({})
    assert record.json() == {"ok": True, "task_root_first": str(SHADOWING_DEPS)}, record.describe()
    assert runtime.alive()
    assert "instead of the runtime's own" not in runtime.log()


def test_a_local_runtime_started_from_the_task_root_is_not_shadowed(tmp_path: Path) -> None:
    """`invoke` (like `serve` and `demo`) starts the bootstrap itself, from the working directory."""
    events = tmp_path / "events.json"
    events.write_text('[{"n": 1}, {"n": 2}]')
    log = tmp_path / "runtime.log"
    result = subprocess.run(
        [str(BIN / "lambda-supervisor"), "invoke", "app.handler", "--events", str(events), "--task-root", ".",
         "--runtime-log", str(log)],
        cwd=SHADOWING_DEPS, env=clean_environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr + log.read_text()
    assert "instead of the runtime's own" not in log.read_text()


def test_a_request_id_with_odd_characters_is_answered_and_cannot_split_a_log_line(
        start_runtime: StartRuntime) -> None:
    """Lambda's ids are UUIDs, but the id is echoed in the post's path and in log lines: it is quoted in the path
    and escaped in the log."""
    runtime = start_runtime("faults.echo", env={"LAMBDA_SUPERVISOR_REPORT": "on"})  # the line that echoes the id
    odd = "req/../1?x=y#z\t2026-01-01T00:00:00.000Z"
    polls = runtime.emulator.next_poll_count
    runtime.emulator.submit({"n": 1}, request_id=odd)
    record = runtime.emulator.wait_outcome(odd, 60)
    runtime.emulator.wait_next_polled(polls + 1, timeout=60)
    assert record.json()["request_id"] == odd, "the handler sees the id as Lambda gave it"
    log = runtime.wait_log("REPORT RequestId: ")  # written while the post is in flight
    assert "REPORT RequestId: req/../1?x=y#z\\t2026-01-01T00:00:00.000Z\t" in log
    assert f"\t{odd}\t" not in log
    assert runtime.alive()
