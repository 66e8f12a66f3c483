"""The cold start. What the bootstrap imports before its first response, when the `spare` standby starts and at
what priority, and which strategy the default picks for the function's memory."""

from __future__ import annotations

import os
import re
from pathlib import Path

import psutil
import pytest

from conftest import TASK_ROOTS, Runtime, StartRuntime, wait_for

COLD = TASK_ROOTS / "cold"
#: Never imported by the bootstrap, by the supervisor or a worker, whatever happens: the local tools (the emulator,
#: serve, invoke, demo) and what only they need. A Lambda function's package holds neither.
NEVER_IMPORTED = {"lambda_supervisor.local", "requests", "loguru"}
#: Never imported on the way to the first response (a trivial, sync handler).
FORBIDDEN_IMPORTS = {"asyncio", "tenacity", "psutil", *NEVER_IMPORTED}
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$", re.MULTILINE)


def imported(log: str) -> set[str]:
    """Every module named in `python -X importtime` output (PYTHONPROFILEIMPORTTIME reaches the workers too)."""
    return set(IMPORT_LINE.findall(log))


def forbidden(modules: set[str], names: set[str] = FORBIDDEN_IMPORTS) -> set[str]:
    """The modules that are one of ``names`` or inside one of them."""
    return {name for name in modules if any(name == bad or name.startswith(bad + ".") for bad in names)}


def children(runtime: Runtime) -> list[int]:
    return [child.pid for child in psutil.Process(runtime.process.pid).children()]


def test_nothing_heavy_is_imported_on_the_way_to_the_first_response(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("trivial.handler", task_root=COLD, env={"PYTHONPROFILEIMPORTTIME": "1"})
    before_next = imported(runtime.log())  # the supervisor waits in its first `next`: its worker is ready
    assert "lambda_supervisor.supervisor.loop" in before_next and "lambda_supervisor.worker.main" in before_next
    assert forbidden(before_next) == set()
    record = runtime.invoke({})
    assert record.outcome_kind == "response", record.describe()
    assert forbidden(imported(runtime.log())) == set()


def test_the_local_tools_are_never_imported_by_the_bootstrap(start_runtime: StartRuntime) -> None:
    """Nor after a crash and the replacement worker (every process of the runtime reports its imports)."""
    runtime = start_runtime("trivial.handler", task_root=COLD, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
    assert runtime.invoke({}).outcome_kind == "response"
    modules = imported(runtime.log())
    assert "lambda_supervisor.supervisor.cli" in modules and "lambda_supervisor.worker.main" in modules
    assert forbidden(modules, NEVER_IMPORTED) == set()


def test_the_spare_standby_starts_after_the_first_response_at_idle_priority(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("trivial.handler", task_root=COLD,
                            env={"LAMBDA_SUPERVISOR_RESPAWN": "spare", "LAMBDA_SUPERVISOR_REPORT": "on"})
    assert len(children(runtime)) == 1, "only the first worker runs until the first response is posted"
    first = runtime.invoke({})
    active = first.json()["pid"]
    assert first.json()["policy"] == os.SCHED_OTHER
    standby = wait_for(lambda: [pid for pid in children(runtime) if pid != active], what="the standby")[0]
    log = runtime.log()
    assert log.index(f"REPORT RequestId: {first.request_id}") < log.index("standby worker started"), log
    if os.geteuid() == 0:  # only where idle priority can be undone (see supervisor/priority.py)
        assert os.sched_getscheduler(standby) == os.SCHED_IDLE
    assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
    promoted = runtime.invoke({}).json()
    assert promoted["pid"] == standby
    assert promoted["policy"] == os.SCHED_OTHER, "a promoted standby serves at normal priority"


@pytest.mark.parametrize(("memory_mb", "hold_mb", "expected"), [(128, 40, "fork"), (1024, 40, "spare")])
def test_the_default_keeps_a_standby_only_where_two_workers_fit(
    start_runtime: StartRuntime, tmp_path: Path, memory_mb: int, hold_mb: int, expected: str
) -> None:
    ready = tmp_path / "ready"
    runtime = start_runtime("trivial.handler", task_root=COLD, env={
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb), "HOLD_MB": str(hold_mb), "LAMBDA_SUPERVISOR_RESPAWN": "",
        "READY_LOG": str(ready)})
    chosen = [line for line in runtime.log().splitlines() if "respawn strategy chosen" in line]
    assert len(chosen) == 1 and f"strategy={expected} " in chosen[0], chosen
    assert f"of {memory_mb} MB" in chosen[0], "the line gives the rule's figures"
    first = runtime.invoke({}).json()["pid"]
    if expected == "fork":
        assert children(runtime) == [first], "no second initialised worker where it does not fit"
    else:
        wait_for(lambda: len(ready.read_text().split()) == 2, what="the standby's init")
    assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
    assert runtime.invoke({}).outcome_kind == "response"
    replaced = [line for line in runtime.log().splitlines() if "worker replaced" in line]
    assert len(replaced) == 1 and f"strategy={expected} " in replaced[0], replaced


def test_faults_faster_than_the_init_are_served_by_forking(start_runtime: StartRuntime) -> None:
    """Under `auto`, a crash that finds the standby still initialising switches to `fork`: that crash waits for
    the template's init, the ones after it only for a fork."""
    runtime = start_runtime("trivial.handler", task_root=COLD,
                            env={"INIT_SLEEP_S": "2", "LAMBDA_SUPERVISOR_RESPAWN": ""})
    assert runtime.invoke({}).outcome_kind == "response"  # the standby starts now, and takes 2 s
    for _ in range(3):
        assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
        assert runtime.invoke({}).outcome_kind == "response"
    log = runtime.log()
    assert log.count("respawn strategy switched: strategy=fork") == 1, log
    ready_ms = [float(ms) for ms in re.findall(r"worker replaced: .* strategy=fork ready_ms=([\d.]+)", log)]
    assert len(ready_ms) == 3, log
    assert ready_ms[0] >= 2000, "the first waits for the template's init"
    assert max(ready_ms[1:]) < 1000, f"the others only for a fork: {ready_ms}"
