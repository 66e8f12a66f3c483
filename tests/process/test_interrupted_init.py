"""SIGTERM while a worker is starting (the first init, or a `fresh` respawn) ends the runtime within the shutdown
grace instead of waiting for the init to finish: the wait for a starting worker watches the supervisor's self-pipe."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from conftest import StartRuntime, process_gone, wait_for
from lambda_supervisor.supervisor.exit_codes import ExitCode

DEADLINES = Path(__file__).parents[1] / "task_roots" / "deadlines"
GRACE_MS = 300
#: Generous for a loaded machine, and far below the 60 s the blocked init would take.
EXIT_WITHIN_S = 5.0


def started_workers(flag: Path) -> list[int]:
    """Pids of the workers whose init is blocked (each leaves ``<flag>.<pid>.started``)."""
    pattern = re.compile(re.escape(flag.name) + r"\.(\d+)\.started$")
    return [int(match.group(1)) for name in os.listdir(flag.parent) if (match := pattern.match(name))]


def assert_exits_soon_after_sigterm(runtime, pids: list[int]) -> None:  # type: ignore[no-untyped-def]
    sent = time.monotonic()
    runtime.process.send_signal(signal.SIGTERM)
    assert runtime.wait_exit(EXIT_WITHIN_S + 10) == ExitCode.OK
    took = time.monotonic() - sent
    assert took < EXIT_WITHIN_S, f"took {took:.1f} s to exit after SIGTERM"
    for pid in pids:
        assert process_gone(pid), f"the starting worker {pid} outlived the supervisor"


@pytest.mark.parametrize("strategy", ["fresh", "spare", "fork"])
def test_sigterm_during_init_exits_within_the_grace(start_runtime: StartRuntime, tmp_path: Path,
                                                    strategy: str) -> None:
    flag = tmp_path / "slow-init"
    flag.touch()
    runtime = start_runtime("deadlines.pid", task_root=DEADLINES, wait_ready=False,
                            env={"SLOW_INIT_FLAG": str(flag), "LAMBDA_SUPERVISOR_RESPAWN": strategy,
                                 "LAMBDA_SUPERVISOR_SHUTDOWN_GRACE_MS": str(GRACE_MS)})
    pids = wait_for(lambda: started_workers(flag), what="a worker to block in its init")
    assert_exits_soon_after_sigterm(runtime, pids + started_workers(flag))
    assert runtime.emulator.init_errors == [], "a shutdown is not an init failure"
    assert runtime.emulator.next_poll_count == 0


def test_sigterm_during_a_fresh_respawn_exits_within_the_grace(start_runtime: StartRuntime, tmp_path: Path) -> None:
    flag = tmp_path / "slow-init"
    runtime = start_runtime("deadlines.pid_or_crash", task_root=DEADLINES,
                            env={"SLOW_INIT_FLAG": str(flag), "LAMBDA_SUPERVISOR_RESPAWN": "fresh",
                                 "LAMBDA_SUPERVISOR_SHUTDOWN_GRACE_MS": str(GRACE_MS)})
    assert isinstance(runtime.invoke({}).json(), int)
    flag.touch()  # from now on, a new worker's init blocks
    record = runtime.emulator.invoke({"crash": True}, wait=30)
    assert record.error.error_type == "Runtime.ExitError"  # posted first; the respawn follows
    pids = wait_for(lambda: started_workers(flag), what="the replacement to block in its init")
    assert_exits_soon_after_sigterm(runtime, pids)
    assert "shutdown requested" in runtime.log()


def test_sigterm_during_a_respawn_backoff_exits_at_once(start_runtime: StartRuntime, tmp_path: Path) -> None:
    """A replacement that keeps failing init is retried with growing sleeps; SIGTERM does not wait them out."""
    flag = tmp_path / "failing-init"
    runtime = start_runtime("deadlines.pid_or_crash", task_root=DEADLINES,
                            env={"FAIL_INIT_FLAG": str(flag), "LAMBDA_SUPERVISOR_RESPAWN": "fresh",
                                 "LAMBDA_SUPERVISOR_RESPAWN_ATTEMPTS": "20",
                                 "LAMBDA_SUPERVISOR_SHUTDOWN_GRACE_MS": str(GRACE_MS)})
    assert isinstance(runtime.invoke({}).json(), int)
    flag.touch()
    assert runtime.emulator.invoke({"crash": True}, wait=30).error.error_type == "Runtime.ExitError"

    def long_backoff() -> bool:
        waits = [float(ms) for ms in re.findall(r"backing off: .*wait_ms=([\d.]+)", runtime.log())]
        return bool(waits) and waits[-1] >= 3000

    wait_for(long_backoff, timeout=60, what="a backoff sleep of 3 s or more")
    sent = time.monotonic()
    runtime.process.send_signal(signal.SIGTERM)
    assert runtime.wait_exit(30) == ExitCode.OK
    assert time.monotonic() - sent < 2.0, "the backoff sleep must end at the shutdown request"
