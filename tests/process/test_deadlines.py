"""Hangs answered before Lambda's deadline, as Lambda needs them: the emulator resets a runtime that answers late.

Lambda resets the execution environment when an invocation's deadline passes unanswered; the emulator does the
same (the fixture's ``on_timeout`` kills the runtime and starts it again), so a late answer shows as a reset.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

from conftest import StartRuntime, clean_environment, free_port, post_when_listening, process_gone, wait_for

DEADLINES = Path(__file__).parents[1] / "task_roots" / "deadlines"


def test_a_hang_is_answered_before_the_deadline_and_the_instance_is_kept(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("deadlines.spin", task_root=DEADLINES, timeout_s=1.0)
    supervisor = runtime.process.pid
    record = runtime.invoke({})
    assert record.error.error_type == "Runtime.Timeout", record.describe()
    assert re.search(r"Task timed out after (0\.9\d|1\.0\d) seconds", record.error.error_message or ""), (
        record.describe())
    assert record.deadline_ms is not None and record.answered_at is not None
    assert record.answered_at * 1000 < record.deadline_ms, "the timeout must be posted before the deadline"
    assert record.timed_out is None and record.late_posts == []
    assert runtime.resets == [] and runtime.process.pid == supervisor, "the instance must not be reset"
    log = runtime.log()
    assert "worker replaced: reason=timeout" in log
    assert "in spin" in log, "the hung worker's stack is dumped before it is killed"
    killed = int(re.search(r"reason=timeout .*old_pid=(\d+)", log).group(1))  # type: ignore[union-attr]
    assert process_gone(killed)
    assert isinstance(runtime.invoke({}).error.error_type, str)  # the new worker hangs too; same supervisor
    assert runtime.process.pid == supervisor and runtime.resets == []


def test_a_timeout_posted_after_the_deadline_is_refused_and_the_runtime_reset(start_runtime: StartRuntime) -> None:
    """Margin 0 is what the supervisor did before: the timeout is posted at the deadline, which is too late."""
    runtime = start_runtime("deadlines.spin", task_root=DEADLINES, timeout_s=1.0,
                            env={"LAMBDA_SUPERVISOR_TIMEOUT_MARGIN_MS": "0"})
    supervisor = runtime.process.pid
    record = runtime.emulator.invoke({}, wait=30)
    assert record.error.error_type == "Sandbox.Timedout", record.describe()
    assert f"RequestId: {record.request_id} Error: Task timed out after 1.00 seconds" == record.error.error_message
    assert record.posts == [], "a post after the deadline must not count"
    wait_for(lambda: runtime.resets == [record.request_id], what="the emulator to reset the runtime")
    assert runtime.process.pid != supervisor
    assert process_gone(supervisor)
    runtime.emulator.wait_next_polled(runtime.emulator.next_poll_count + 1, timeout=60)


def test_an_event_with_no_time_left_is_answered_without_touching_the_worker(start_runtime: StartRuntime) -> None:
    """Its timeout is posted at once; the healthy worker, which never saw it, stays, and no stack is dumped."""
    runtime = start_runtime("deadlines.pid", task_root=DEADLINES, env={"LAMBDA_SUPERVISOR_TIMEOUT_MARGIN_MS": "2000"})
    worker = runtime.invoke({}, timeout_s=10).json()
    record = runtime.invoke({}, timeout_s=1.5)  # less time left than the margin
    assert record.error.error_type == "Runtime.Timeout", record.describe()
    assert re.search(r"Task timed out after 1\.[45]\d seconds", record.error.error_message or ""), record.describe()
    assert record.answered_at is not None and record.deadline_ms is not None
    assert record.answered_at * 1000 < record.deadline_ms - 1000, "answered at once, not at the deadline"
    assert runtime.invoke({}, timeout_s=10).json() == worker, "the worker that never saw the event must stay"
    log = runtime.log()
    assert "worker replaced" not in log
    assert "Current thread" not in log and "Thread 0x" not in log, "no stack dump of an idle worker"
    assert f"event arrived with less time left than the timeout margin; answered without running it: " \
           f"request_id={record.request_id}" in log
    assert runtime.resets == []


def test_serve_resets_a_runtime_that_answers_a_timeout_late(tmp_path: Path) -> None:
    """`serve` behaves like Lambda too: the caller gets Sandbox.Timedout, the runtime is restarted and serves on."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "lambda_supervisor.supervisor", "serve", "deadlines.sleep",
             "--task-root", str(DEADLINES), "--port", str(port), "--timeout", "1"],
            env={**clean_environment(), "LAMBDA_SUPERVISOR_TIMEOUT_MARGIN_MS": "0"}, stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"
        try:
            first_pid = post_when_listening(url, b'{"seconds": 0}').json()
            timed_out = requests.post(url, data=b'{"seconds": 30}', timeout=30)
            assert timed_out.json()["errorType"] == "Sandbox.Timedout", timed_out.text
            assert timed_out.headers["X-Amz-Function-Error"] == "Unhandled"
            after = requests.post(url, data=b'{"seconds": 0}', timeout=60)
            assert after.status_code == 200 and isinstance(after.json(), int) and after.json() != first_pid
            assert "resetting the runtime, as Lambda does" in log_path.read_text()
        finally:
            server.send_signal(signal.SIGINT)
            assert server.wait(30) == 0


def test_the_soft_timeout_counts_back_from_the_timeout_post_not_from_lambdas_deadline(
    start_runtime: StartRuntime,
) -> None:
    """A soft timeout shorter than the margin still fires: it is that long before the hard timeout."""
    runtime = start_runtime("deadlines.soft_then_report", task_root=DEADLINES, timeout_s=2.0,
                            env={"LAMBDA_SUPERVISOR_TIMEOUT_MARGIN_MS": "600",
                                 "LAMBDA_SUPERVISOR_SOFT_TIMEOUT_MS": "200"})
    record = runtime.invoke({})
    assert record.error.error_type == "SoftTimeoutError", record.describe()


def test_a_worker_slow_to_take_the_dump_signal_still_dumps_its_stacks_after_a_post_in_time(
    start_runtime: StartRuntime,
) -> None:
    """The post does not wait for a starved worker's dump; the kill, after the post, does."""
    runtime = start_runtime("deadlines.dump_late", task_root=DEADLINES, timeout_s=1.5,
                            env={"LAMBDA_SUPERVISOR_TIMEOUT_MARGIN_MS": "300"})
    record = runtime.invoke({"margin_ms": 300, "after_timer_ms": 60})
    assert record.error.error_type == "Runtime.Timeout", record.describe()
    assert record.answered_at is not None and record.deadline_ms is not None
    assert record.answered_at * 1000 < record.deadline_ms
    log = runtime.log()
    assert "in dump_late" in log, "the dump, taken after the post, reaches the log before the kill"
    assert "worker replaced: reason=timeout" in log and runtime.resets == []
