"""Respawn strategies, recycle policies, the soft timeout and crash-loop containment."""

from __future__ import annotations

import re
import time
from itertools import groupby
from pathlib import Path

import psutil
import pytest

from conftest import TASK_ROOTS, Runtime, StartRuntime, process_dead, wait_for
from lambda_supervisor.supervisor.config import DEFAULT_TIMEOUT_MARGIN_MS
from lambda_supervisor.supervisor.exit_codes import ExitCode

COUNTED = TASK_ROOTS / "respawn"
STRATEGIES = ["fresh", "spare", "fork"]


def start(start_runtime: StartRuntime, strategy: str, **env: str) -> Runtime:
    return start_runtime("counted.handler", task_root=COUNTED,
                         env={"LAMBDA_SUPERVISOR_RESPAWN": strategy, **env})


def ok_pid(runtime: Runtime, event: dict[str, object] | None = None) -> int:
    record = runtime.invoke(event or {})
    assert record.outcome_kind == "response", record.describe()
    return int(record.json()["pid"])


def supervisor_children(runtime: Runtime) -> set[int]:
    return {child.pid for child in psutil.Process(runtime.process.pid).children()}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_recovers_from_repeated_crashes(start_runtime: StartRuntime, strategy: str) -> None:
    runtime = start(start_runtime, strategy)
    pids = [ok_pid(runtime)]
    for _ in range(3):
        assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
        pids.append(ok_pid(runtime))
    assert len(set(pids)) == 4
    assert runtime.alive()
    assert runtime.log().count(f"strategy={strategy}") >= 4  # the first ready line and three replacements


def test_spare_promotes_the_standby_that_was_already_initialised(start_runtime: StartRuntime) -> None:
    runtime = start(start_runtime, "spare")
    active = ok_pid(runtime)
    standby = wait_for(lambda: supervisor_children(runtime) - {active}, what="the standby worker")
    assert len(standby) == 1
    runtime.invoke({"action": "crash"})
    assert ok_pid(runtime) == standby.pop(), "the standby must be the one promoted"
    assert len(supervisor_children(runtime)) == 2, "a new standby is started at once"


def test_fork_runs_user_init_once_and_workers_are_supervisor_children(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    init_log = tmp_path / "inits"
    runtime = start(start_runtime, "fork", INIT_LOG=str(init_log))
    for _ in range(3):
        record = runtime.invoke({})
        assert record.json()["ppid"] == runtime.process.pid, "a forked worker is adopted by the supervisor"
        runtime.invoke({"action": "crash"})
    assert len(init_log.read_text().split()) == 1, "the template ran the user's init once, for all workers"


def test_fresh_reruns_user_init_for_each_worker(start_runtime: StartRuntime, tmp_path: Path) -> None:
    init_log = tmp_path / "inits"
    runtime = start(start_runtime, "fresh", INIT_LOG=str(init_log))
    for _ in range(3):
        runtime.invoke({"action": "crash"})
    ok_pid(runtime)
    assert len(init_log.read_text().split()) == 4


def test_a_dead_standby_is_replaced_between_invocations(start_runtime: StartRuntime) -> None:
    runtime = start(start_runtime, "spare")
    active = ok_pid(runtime)
    standby = wait_for(lambda: supervisor_children(runtime) - {active}, what="the standby worker").pop()
    psutil.Process(standby).kill()
    wait_for(lambda: process_dead(standby), what="the standby to die")
    assert ok_pid(runtime) == active
    assert "standby worker died" in runtime.log()
    runtime.invoke({"action": "crash"})
    assert ok_pid(runtime) not in (active, standby)


def test_a_dead_fork_template_is_restarted_when_needed(start_runtime: StartRuntime) -> None:
    runtime = start(start_runtime, "fork")
    active = ok_pid(runtime)
    template = wait_for(lambda: supervisor_children(runtime) - {active}, what="the template").pop()
    psutil.Process(template).kill()
    wait_for(lambda: process_dead(template), what="the template to die")
    runtime.invoke({"action": "crash"})
    assert ok_pid(runtime) != active
    assert runtime.alive()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_recycling_with_jitter_keeps_each_worker_within_its_bounds(start_runtime: StartRuntime, strategy: str) -> None:
    runtime = start(start_runtime, strategy, LAMBDA_SUPERVISOR_MAX_INVOCATIONS="2",
                    LAMBDA_SUPERVISOR_MAX_INVOCATIONS_JITTER="2")
    pids = [ok_pid(runtime) for _ in range(16)]
    runs = [len(list(group)) for _, group in groupby(pids)]
    assert all(2 <= run <= 4 for run in runs[:-1]), runs
    assert runs[-1] <= 4
    assert len(set(pids)) == len(runs), "a recycled worker never comes back"


def test_a_worker_past_its_maximum_age_is_recycled_between_requests(start_runtime: StartRuntime) -> None:
    # The limit is well above a worker's start-up even on a loaded machine, so the first request cannot already
    # find it aged; then the test waits for the worker process itself to be older than the limit.
    max_age_s = 3.0
    runtime = start(start_runtime, "fresh", LAMBDA_SUPERVISOR_MAX_WORKER_AGE_S=str(max_age_s))
    first = ok_pid(runtime)
    served = time.monotonic()  # the worker started before it served: from now on its age is at least this long
    wait_for(lambda: time.monotonic() - served > max_age_s, timeout=max_age_s + 5, what="the worker to age")
    assert ok_pid(runtime) == first, "the aged worker finishes the request in hand"
    assert ok_pid(runtime) != first
    assert "reason=recycle-max-age" in runtime.log()


def test_the_soft_rss_limit_recycles_without_failing_a_request(start_runtime: StartRuntime) -> None:
    runtime = start(start_runtime, "fresh", LAMBDA_SUPERVISOR_RECYCLE_RSS_MB="60")
    grown = ok_pid(runtime, {"action": "grow"})
    after = ok_pid(runtime)
    assert after != grown
    assert re.search(r"reason=recycle-rss-soft-limit .*peak_rss_mb=(8\d|9\d|\d{3,})\.", runtime.log())


def test_the_soft_timeout_raises_inside_the_handler_before_the_kill(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    runtime = start_runtime("counted.handler", task_root=COUNTED, timeout_s=3.0,
                            env={"LAMBDA_SUPERVISOR_SOFT_TIMEOUT_MS": "1500"})
    pid = ok_pid(runtime)
    marker = tmp_path / "cleaned-up"
    record = runtime.invoke({"action": "soft_cleanup", "marker": str(marker)})
    assert record.error.error_type == "SoftTimeoutError"
    assert record.error.error is not None and "counted.py" in "".join(record.error.error["stackTrace"])
    remaining_ms = int(marker.read_text())
    # raised 1500 ms before the timeout post, which comes the timeout margin before Lambda's deadline
    assert 500 < remaining_ms <= 1600 + DEFAULT_TIMEOUT_MARGIN_MS, "the handler ran its clean-up with time to spare"
    assert ok_pid(runtime) == pid, "a soft timeout is an ordinary error: the worker stays warm"


@pytest.mark.parametrize("known_at_init", [False, True], ids=["from-the-deadline", "from-AWS_LAMBDA_FUNCTION_TIMEOUT"])
def test_a_soft_timeout_not_shorter_than_the_function_timeout_is_ignored_with_one_warning(
    start_runtime: StartRuntime, known_at_init: bool
) -> None:
    env = {"LAMBDA_SUPERVISOR_SOFT_TIMEOUT_MS": "5000"}
    if known_at_init:
        env["AWS_LAMBDA_FUNCTION_TIMEOUT"] = "2"
    runtime = start_runtime("counted.handler", task_root=COUNTED, timeout_s=2.0, env=env)
    if known_at_init:
        assert "soft timeout is ignored" in runtime.log(), "warned at init, before any event"
    pids = {ok_pid(runtime, {"action": "sleep", "seconds": 0.05}) for _ in range(3)}
    assert len(pids) == 1
    assert runtime.log().count("soft timeout is ignored") == 1, runtime.log()


def test_a_swallowed_soft_timeout_still_meets_the_hard_kill(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("counted.handler", task_root=COUNTED, timeout_s=1.5,
                            env={"LAMBDA_SUPERVISOR_SOFT_TIMEOUT_MS": "500"})
    assert runtime.invoke({"action": "soft_swallow"}).error.error_type == "Runtime.Timeout"
    ok_pid(runtime)


def test_a_crash_loop_backs_off_then_reports_the_init_error(start_runtime: StartRuntime, tmp_path: Path) -> None:
    runtime = start(start_runtime, "fresh", INIT_LOG=str(tmp_path / "inits"), FAIL_LATER_INITS="1",
                    LAMBDA_SUPERVISOR_RESPAWN_ATTEMPTS="3")
    ok_pid(runtime)
    crash = runtime.emulator.invoke({"action": "crash"}, wait=60)
    assert crash.error.error_type == "Runtime.ExitError", "the crashing request is answered before respawning"
    posted = runtime.emulator.wait_init_error(60)
    assert posted.error_type == "RuntimeError"
    assert posted.error_message == "init fails from now on"
    assert runtime.wait_exit() == ExitCode.INIT_FAILED
    waits = [float(w) for w in re.findall(r"backing off: attempt=\d+ wait_ms=([\d.]+)", runtime.log())]
    assert len(waits) == 2 and all(wait > 0 for wait in waits), runtime.log()
    assert len((tmp_path / "inits").read_text().split()) == 4, "one good init, then exactly three attempts"


def test_a_standby_whose_init_keeps_failing_is_retried_with_backoff_and_its_error_logged(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    broken, ready = tmp_path / "broken", tmp_path / "ready"
    runtime = start(start_runtime, "spare", BREAK_INIT_FILE=str(broken), READY_LOG=str(ready))
    first = ok_pid(runtime)
    # the standby starts after the first response: let it finish its init before the break
    wait_for(lambda: ready.exists() and len(ready.read_text().split()) == 2, what="the standby's init")
    broken.touch()  # from now on every init fails: the standby started after the next crash will die
    assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
    promoted = ok_pid(runtime)
    assert promoted != first, "the standby initialised before the break was promoted"

    def standby_losses() -> list[tuple[int, float]]:
        ok_pid(runtime)  # between invocations the supervisor looks after its standby
        found = re.findall(r"standby worker died; starting another after a pause: .*error='RuntimeError: init is "
                           r"broken from now on' attempt=(\d+) retry_in_ms=([\d.]+)", runtime.log())
        return [(int(attempt), float(pause)) for attempt, pause in found] if len(found) >= 3 else []

    losses = wait_for(standby_losses, timeout=60, what="three standby losses")
    assert [attempt for attempt, _ in losses[:3]] == [1, 2, 3]
    pauses = [pause for _, pause in losses[:3]]
    assert pauses == sorted(pauses) and pauses[0] >= 100, f"the pause grows: {pauses}"
    assert "exit status 1" in runtime.log()
    broken.unlink()  # the dependency is back: a standby is ready again once the pause is over
    assert runtime.alive()
    wait_for(lambda: ok_pid(runtime) and len(supervisor_children(runtime)) == 2, timeout=60,
             what="a healthy standby")
    assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
    assert ok_pid(runtime) != promoted
