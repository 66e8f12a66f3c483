"""The first worker is started from the bootstrap's first lines, before the configuration is loaded, and held
before the user's code until the configuration confirms it (supervisor/early_worker.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TASK_ROOTS, StartRuntime, wait_for
from lambda_supervisor.supervisor.config import Config
from lambda_supervisor.supervisor.early_worker import environment_updates, expected_environment, region_size
from lambda_supervisor.supervisor.exit_codes import ExitCode
from lambda_supervisor.supervisor.worker_launch import worker_environment

COLD = TASK_ROOTS / "cold"
REGION = TASK_ROOTS / "region"
MiB = 1024 * 1024
LAMBDA_ENVIRONMENT = {
    "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "_HANDLER": "app.handler", "AWS_LAMBDA_FUNCTION_NAME": "f",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/f", "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/27/[$LATEST]abc",
    "AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "DEBUG", "PATH": "/usr/bin", "TZ": ":UTC",
}


def _early(environ: dict[str, str], defaults: dict[str, str]) -> dict[str, str]:
    """The worker's environment as early_worker.py works it out before the configuration is loaded."""
    updates = environment_updates(environ, defaults)
    assert updates is not None
    return expected_environment(environ, updates)


@pytest.mark.parametrize("environ", [
    LAMBDA_ENVIRONMENT,
    {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "_HANDLER": "app.handler"},  # every default
    {**LAMBDA_ENVIRONMENT, "LAMBDA_SUPERVISOR_MAX_RESPONSE_BYTES": "1000", "AWS_LAMBDA_LOG_FORMAT": ""},
    {**LAMBDA_ENVIRONMENT, "_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET": "/tmp/log.sock"},  # withheld: one slot
    {**LAMBDA_ENVIRONMENT, "_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET": "/tmp/log.sock",
     "AWS_LAMBDA_MAX_CONCURRENCY": "4", "LAMBDA_SUPERVISOR_RESPAWN": "spare"},  # passed on: several slots
], ids=["lambda", "defaults", "set-and-empty", "log-socket-one-slot", "log-socket-slots"])
def test_the_environment_worked_out_early_is_the_configured_one(tmp_path: Path, environ: dict[str, str]) -> None:
    environ = {**environ, "LAMBDA_TASK_ROOT": str(tmp_path)}
    assert _early(environ, {}) == worker_environment(Config.load(environ), environ)


@pytest.mark.parametrize("max_response", ["", "1000", str(6 * MiB), str(20 * MiB)])
def test_the_early_workers_region_is_the_size_the_configuration_gives(tmp_path: Path, max_response: str) -> None:
    environ = {**LAMBDA_ENVIRONMENT, "LAMBDA_TASK_ROOT": str(tmp_path),
               "LAMBDA_SUPERVISOR_MAX_RESPONSE_BYTES": max_response}
    early = environment_updates(environ, {})
    assert early is not None
    assert region_size(early) == Config.load(environ).max_frame_payload_bytes


def test_flags_count_as_for_the_configuration(tmp_path: Path) -> None:
    environ = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}
    flags = {"_HANDLER": " app.handler ", "LAMBDA_TASK_ROOT": str(tmp_path)}
    assert _early(environ, flags) == worker_environment(Config.load(environ, flags), environ)


def _first_worker_line(log: str) -> str:
    lines = [line for line in log.splitlines() if "first worker:" in line]
    assert len(lines) == 1, log
    return lines[0]


def test_the_first_worker_is_started_early_and_inits_once(start_runtime: StartRuntime, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    runtime = start_runtime("trivial.handler", task_root=COLD, env={"READY_LOG": str(ready)})
    assert "started early" in _first_worker_line(runtime.log())
    assert runtime.invoke({}).json()["pid"] == int(ready.read_text())


def test_a_value_to_normalise_gets_a_worker_started_later_and_one_init(start_runtime: StartRuntime,
                                                                       tmp_path: Path) -> None:
    """The held worker never ran the user's code: the init that serves is the only one."""
    ready = tmp_path / "ready"
    runtime = start_runtime("trivial.handler", task_root=COLD,
                            env={"READY_LOG": str(ready), "AWS_LAMBDA_LOG_FORMAT": "text"})  # normalised: Text
    assert "started now" in _first_worker_line(runtime.log())
    assert runtime.invoke({}).json()["pid"] == int(ready.read_text())


def test_a_configuration_error_runs_no_user_code(start_runtime: StartRuntime, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    runtime = start_runtime("trivial.handler", task_root=COLD, wait_ready=False,
                            env={"READY_LOG": str(ready), "LAMBDA_SUPERVISOR_TIMEOUT_MARGIN_MS": "soon"})
    assert runtime.emulator.wait_init_error(60).error_type == "Runtime.InvalidConfiguration"
    assert runtime.wait_exit() == ExitCode.CONFIG_ERROR
    assert not ready.exists(), "the early worker imported the user's code"


@pytest.mark.parametrize("environ", [
    {"AWS_LAMBDA_MAX_CONCURRENCY": "4"},
    {"AWS_LAMBDA_MAX_CONCURRENCY": "1", "LAMBDA_SUPERVISOR_CONCURRENCY": "2"},
], ids=["lambda", "ours"])
def test_no_early_worker_for_auto_with_several_slots(tmp_path: Path, environ: dict[str, str]) -> None:
    """Their first process is the fork template: an early worker would be started only to be discarded."""
    from lambda_supervisor.supervisor import early_worker

    early_worker.start(["app.handler"], {"LAMBDA_TASK_ROOT": str(tmp_path), **environ})
    early = early_worker.take()
    if early is not None:
        early.discard()
    assert early is None


def test_the_early_first_worker_takes_large_payloads_through_its_region(start_runtime: StartRuntime) -> None:
    """Its region is made before the supervisor imports mmap, and mapped once the worker is claimed."""
    runtime = start_runtime("region.region_rss_kb", task_root=REGION)
    assert "started early" in _first_worker_line(runtime.log())
    touched = runtime.invoke({"pad": "x" * (2 * MiB)}).json()
    assert touched["rss_kb"] is not None and touched["rss_kb"] >= 2 * MiB // 1024, "a 2 MiB event crossed the region"


def test_a_held_worker_that_died_is_discarded_not_released(tmp_path: Path) -> None:
    """Its hold pipe has no reader: the claim gives it up (the supervisor then starts one the ordinary way) instead
    of dying of the broken pipe."""
    import os
    import signal

    from lambda_supervisor.shared.prctl import set_child_subreaper, set_dumpable
    from lambda_supervisor.supervisor import early_worker
    from lambda_supervisor.supervisor.worker_launch import claim

    environ = {**LAMBDA_ENVIRONMENT, "LAMBDA_TASK_ROOT": str(tmp_path), "LAMBDA_SUPERVISOR_SHARE_CPU": "off"}
    try:
        early_worker.start(["app.handler"], environ)
    finally:  # it made this process a non-dumpable subreaper, as it does the supervisor
        set_dumpable(True)
        set_child_subreaper(False)
    early = early_worker.take()
    assert early is not None
    os.kill(early.pid, signal.SIGKILL)
    wait_for(lambda: os.waitid(os.P_PID, early.pid, os.WEXITED | os.WNOWAIT), what="the held worker's death")
    assert claim(early, Config.load(environ), environ, None) is None
    assert not os.path.exists(f"/proc/{early.pid}"), "discarded: reaped"
