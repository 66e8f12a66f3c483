"""LAMBDA_SUPERVISOR_RLIMITS: each limit holds inside the handler (and its children), CPU is per invocation and
kills the worker when exceeded, and a bad setting stops the runtime with an error naming the variable."""

from __future__ import annotations

import re
import resource

from conftest import StartRuntime
from lambda_supervisor.supervisor.exit_codes import ExitCode
from process_checks import SOAK, start_soak

INFINITY = resource.RLIM_INFINITY


def test_each_rlimit_applies_inside_the_handler_and_is_inherited(start_runtime: StartRuntime) -> None:
    # NPROC counts every process and thread of the user, so keep it high (and within what we may set)
    hard_nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = 20000 if hard_nproc == INFINITY else min(hard_nproc, 20000)
    runtime, _ = start_soak(
        start_runtime, LAMBDA_SUPERVISOR_RLIMITS=f"NOFILE=256,NPROC={nproc},CORE=0,CPU=30,FSIZE=1000000:unlimited")
    seen = runtime.invoke({"action": "rlimits"}).json()
    limits = {name: tuple(value) for name, value in seen["limits"].items()}
    assert limits["NOFILE"] == (256, 256)
    assert limits["NPROC"] == (nproc, nproc)
    assert limits["CORE"] == (0, 0)
    assert limits["FSIZE"] == (1000000, INFINITY)
    cpu_soft, cpu_hard = limits["CPU"]
    assert 30 <= cpu_soft - seen["cpu_used"] <= 31, "30 CPU seconds from the start of this invocation"
    assert cpu_hard == INFINITY
    assert seen["child_limits"] == "(256, 256)"


def test_without_the_setting_the_worker_keeps_the_supervisors_limits(start_runtime: StartRuntime) -> None:
    runtime, _ = start_soak(start_runtime)
    limits = {name: tuple(value) for name, value in runtime.invoke({"action": "rlimits"}).json()["limits"].items()}
    assert limits["NOFILE"] == resource.getrlimit(resource.RLIMIT_NOFILE)
    assert limits["CPU"] == resource.getrlimit(resource.RLIMIT_CPU)


def test_nofile_is_enforced(start_runtime: StartRuntime) -> None:
    runtime, _ = start_soak(start_runtime, LAMBDA_SUPERVISOR_RLIMITS="NOFILE=64")
    result = runtime.invoke({"action": "open_files", "count": 100}).json()
    assert result["opened"] < 64
    assert result["error"] == "Too many open files"


def test_a_handler_over_its_cpu_seconds_is_killed_and_reported(start_runtime: StartRuntime) -> None:
    runtime, _ = start_soak(start_runtime, LAMBDA_SUPERVISOR_RLIMITS="CPU=1")
    record = runtime.invoke({"action": "burn_cpu", "seconds": 30}, timeout_s=60)
    assert record.error.error_type == "Runtime.ExitError"
    assert re.search(r"signal (SIGXCPU|SIGKILL)", record.error.error_message or ""), record.describe()
    assert "worker replaced: reason=crash" in runtime.log()
    assert runtime.invoke({"action": "ok"}).outcome_kind == "response"


def test_the_cpu_limit_is_per_invocation_not_per_worker(start_runtime: StartRuntime) -> None:
    runtime, _ = start_soak(start_runtime, LAMBDA_SUPERVISOR_RLIMITS="CPU=1")
    pids = {runtime.invoke({"action": "burn_cpu", "seconds": 0.6}, timeout_s=30).json()["pid"] for _ in range(3)}
    assert len(pids) == 1, "1.8 CPU seconds over three invocations of 0.6 s each is within a 1 s budget each"


def test_an_invalid_rlimits_setting_stops_the_runtime_naming_the_variable(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("soak.handler", task_root=SOAK, env={"LAMBDA_SUPERVISOR_RLIMITS": "NOFILE=lots"},
                            wait_ready=False)
    posted = runtime.emulator.wait_init_error(60)
    assert posted.error_type == "Runtime.InvalidConfiguration"
    assert "LAMBDA_SUPERVISOR_RLIMITS='NOFILE=lots' is invalid" in (posted.error_message or "")
    assert runtime.wait_exit() == ExitCode.CONFIG_ERROR


def test_a_limit_the_worker_cannot_set_is_an_init_error(start_runtime: StartRuntime) -> None:
    # above the kernel's nr_open, which not even root may set (for anyone else, parsing already refuses it)
    runtime = start_runtime("soak.handler", task_root=SOAK, env={"LAMBDA_SUPERVISOR_RLIMITS": "NOFILE=2000000000"},
                            wait_ready=False)
    posted = runtime.emulator.wait_init_error(60)
    assert posted.error_type == "Runtime.InvalidConfiguration"
    assert "LAMBDA_SUPERVISOR_RLIMITS" in (posted.error_message or "")
    assert runtime.wait_exit() in (ExitCode.INIT_FAILED, ExitCode.CONFIG_ERROR)
