"""The CPU hand-off: the supervisor and the idle worker wait on one CPU; user code runs on every CPU.

Checked from outside through the kernel's own view of each thread's CPU mask (``sched_getaffinity``), with a
handler that reports the masks of its main thread, of a thread started at import and of one it starts itself.
"""

from __future__ import annotations

import os
import signal

import pytest

from conftest import TASK_ROOTS, Runtime, StartRuntime, process_gone, wait_for
from lambda_supervisor.shared.cpu_handoff import CpuHandoff

AFFINITY = TASK_ROOTS / "affinity"
ALL_CPUS = sorted(os.sched_getaffinity(0))

pytestmark = pytest.mark.skipif(len(ALL_CPUS) < 2, reason="one CPU: nothing is pinned, nothing to check")


def start(start_runtime: StartRuntime, strategy: str, share: str = "on") -> Runtime:
    return start_runtime("cpus.handler", task_root=AFFINITY,
                         env={"LAMBDA_SUPERVISOR_RESPAWN": strategy, "LAMBDA_SUPERVISOR_SHARE_CPU": share})


def thread_mask(pid: int) -> list[int]:
    """The CPU mask of a process's main thread (the thread whose id is the pid)."""
    return sorted(os.sched_getaffinity(pid))


def report(runtime: Runtime) -> dict[str, object]:
    record = runtime.invoke({})
    assert record.outcome_kind == "response", record.describe()
    result = record.json()
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize("strategy", ["fresh", "spare", "fork"])
def test_user_code_runs_on_every_cpu_while_the_idle_worker_waits_on_the_supervisors(
        start_runtime: StartRuntime, strategy: str) -> None:
    runtime = start(start_runtime, strategy)
    home = max(ALL_CPUS)
    for _ in range(2):  # the second time, after the worker has been pinned and released once
        result = report(runtime)
        assert result["main"] == ALL_CPUS
        assert result["handler_thread"] == ALL_CPUS
        assert result["import_thread_at_start"] == ALL_CPUS
        # the reply was written from the home CPU, so the worker is pinned there by the time we see it
        assert thread_mask(int(str(result["pid"]))) == [home]
    assert thread_mask(runtime.process.pid) == [home]
    assert "waiting on one CPU with the worker" in runtime.log()


def test_a_replacement_worker_is_released_too(start_runtime: StartRuntime) -> None:
    runtime = start(start_runtime, "spare")
    first = report(runtime)["pid"]
    os.kill(int(str(first)), signal.SIGKILL)
    # reaped, not merely a zombie: a zombie leader's other threads may still hold its pipe open
    wait_for(lambda: process_gone(int(str(first))), what="the supervisor to reap the killed worker")
    result = report(runtime)
    assert result["pid"] != first
    assert result["main"] == ALL_CPUS and result["handler_thread"] == ALL_CPUS


def test_with_sharing_off_nothing_is_pinned(start_runtime: StartRuntime) -> None:
    runtime = start(start_runtime, "spare", share="off")
    result = report(runtime)
    assert result["main"] == ALL_CPUS
    assert thread_mask(int(str(result["pid"]))) == ALL_CPUS
    assert thread_mask(runtime.process.pid) == ALL_CPUS


def test_the_plan_round_trips_and_rejects_a_home_outside_the_cpus() -> None:
    handoff = CpuHandoff(home=3, cpus=frozenset({0, 1, 3}))
    assert handoff.to_argument() == "3:0,1,3"
    assert CpuHandoff.from_argument(handoff.to_argument()) == handoff
    with pytest.raises(ValueError):
        CpuHandoff.from_argument("5:0,1")
