"""`auto` forks only where forking is safe: a worker reports in its ready frame what the user's init left that a
fork would share (open sockets) or lose (threads), and where a second initialised process fits, `auto` keeps a
`spare` standby for such a function instead of forking it (supervisor/strategy_choice.py)."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from conftest import TASK_ROOTS, Runtime, StartRuntime, wait_for

COLD = TASK_ROOTS / "cold"


def children(runtime: Runtime) -> list[int]:
    return [child.pid for child in psutil.Process(runtime.process.pid).children()]


def lines_with(runtime: Runtime, text: str) -> list[str]:
    return [line for line in runtime.log().splitlines() if text in line]


@pytest.mark.parametrize(("handler", "left"), [
    ("init_socket.handler", "init left 1 socket open (forks share it)"),
    ("init_thread.handler", "init left 1 thread besides the main one (forks lack it)"),
])
def test_where_it_fits_auto_keeps_a_standby_for_an_init_that_left_a_socket_or_a_thread(
    start_runtime: StartRuntime, tmp_path: Path, handler: str, left: str
) -> None:
    ready = tmp_path / "ready"
    runtime = start_runtime(handler, task_root=COLD, env={
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "LAMBDA_SUPERVISOR_RESPAWN": "", "READY_LOG": str(ready)})
    chosen = lines_with(runtime, "respawn strategy chosen")
    assert len(chosen) == 1 and "strategy=spare " in chosen[0] and "template=" not in chosen[0], chosen
    assert left in chosen[0] and "<= 60% of 1024 MB" in chosen[0], chosen
    first = runtime.invoke({}).json()["pid"]
    standby = wait_for(lambda: [pid for pid in children(runtime) if pid != first], what="the standby")[0]
    wait_for(lambda: len(ready.read_text().split()) == 2, what="the standby's own init")
    assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
    assert runtime.invoke({}).json()["pid"] == standby, "the standby, which ran its own init, was promoted"
    replaced = lines_with(runtime, "worker replaced")
    assert len(replaced) == 1 and "strategy=spare " in replaced[0], replaced
    assert "fork template" not in runtime.log()


def test_a_plain_init_is_forked_from_a_template_started_ahead(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("trivial.handler", task_root=COLD, env={
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "LAMBDA_SUPERVISOR_RESPAWN": ""})
    chosen = lines_with(runtime, "respawn strategy chosen")
    assert len(chosen) == 1 and "strategy=fork template=ahead " in chosen[0] and "init left" not in chosen[0], chosen


def test_where_no_second_process_fits_auto_forks_at_the_fault_and_says_what_forks_share(
    start_runtime: StartRuntime
) -> None:
    runtime = start_runtime("init_socket.handler", task_root=COLD, env={
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "HOLD_MB": "40", "LAMBDA_SUPERVISOR_RESPAWN": ""})
    chosen = lines_with(runtime, "respawn strategy chosen")
    assert len(chosen) == 1 and "strategy=fork template=at-fault " in chosen[0], chosen
    assert "the template starts at a fault; init left 1 socket open (forks share it)" in chosen[0], chosen
    assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
    assert runtime.invoke({}).outcome_kind == "response"
    replaced = lines_with(runtime, "worker replaced")
    assert len(replaced) == 1 and "strategy=fork " in replaced[0], replaced


def test_a_ready_frame_claiming_counts_out_of_bounds_is_refused(start_runtime: StartRuntime) -> None:
    """The worker is untrusted: its counts are bounded like every other field, never logged as sent."""
    runtime = start_runtime("lying_ready.handler", task_root=COLD, wait_ready=False,
                            env={"LAMBDA_SUPERVISOR_RESPAWN": ""})
    error = runtime.emulator.wait_init_error(60)
    assert error.error_type == "Runtime.InvalidWorkerMessage", error.describe()
    assert "integer counts of open_sockets and extra_threads from 0 to 65536" in (error.error_message or "")
    assert runtime.wait_exit() != 0
    assert str(10**30) not in runtime.log()
