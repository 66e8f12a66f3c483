"""``lambda-supervisor invoke --concurrency K``: K invocations in flight at once, against a K-slot peer runtime
(awslambdaric's multi-concurrent mode) through ``--url``, and with a runtime started by invoke itself; and
``serve --concurrency N``, which does not reset its runtime at a missed deadline, as Managed Instances do not."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests
from test_deadlines import DEADLINES
from test_emulator_concurrency import MI_ROOT, start_awslambdaric
from test_invoke_cli import run_cli, summary_counts

from conftest import clean_environment, free_port, post_when_listening
from lambda_supervisor.local.emulator.server import RuntimeApiEmulator
from lambda_supervisor.local.invoke import Result, restarts_by_slot, restarts_in_log, summarize
from lambda_supervisor.local.runtime import kill_process_tree

SUMMARY = re.compile(r"^(\d+) invocations in ([\d.]+) s, concurrency (\d+): ([\d.]+) per second$", re.MULTILINE)


def result_bodies(stdout: str) -> list[dict[str, object]]:
    """The response bodies printed for each invocation (one line each: number, outcome, latency, body)."""
    return [json.loads(body) for body in re.findall(r"^\s+\d+  ok\s+[\d.]+ ms  (\{.*\})$", stdout, re.MULTILINE)]


@pytest.mark.skipif(importlib.util.find_spec("awslambdaric") is None, reason="awslambdaric is not installed")
def test_concurrency_4_against_a_4_slot_runtime_overlaps_the_requests(tmp_path: Path) -> None:
    sleep_s, count = 1.0, 8
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"sleep_s": sleep_s}) + "\n")
    with RuntimeApiEmulator(function_timeout_s=30) as emulator, (tmp_path / "ric.log").open("wb") as log:
        runtime = start_awslambdaric(emulator, "slow.handler", 4, log)
        try:
            emulator.wait_polls_waiting(4, 60)
            result = run_cli("--url", emulator.invoke_url, "--events", str(events), "-n", str(count),
                             "--concurrency", "4")
        finally:
            kill_process_tree(runtime.pid)
            runtime.wait()
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary_counts(result.stdout) == {"ok": count}
    summary = SUMMARY.search(result.stdout)
    assert summary is not None, result.stdout
    assert int(summary[1]) == count and int(summary[3]) == 4
    assert float(summary[2]) < count * sleep_s / 2, result.stdout  # one at a time it takes count x sleep_s
    assert len({body["pid"] for body in result_bodies(result.stdout)}) == 4  # all four slots served


def test_a_runtime_started_by_invoke_gets_the_concurrency_as_aws_lambda_max_concurrency(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"echo": 1}\n{"echo": 2}\n{"echo": 3}\n')
    result = run_cli("slow.handler", "--events", str(events), "--task-root", str(MI_ROOT), "--concurrency", "3",
                     "--runtime-log", str(tmp_path / "runtime.log"))
    assert result.returncode == 0, result.stdout + result.stderr
    bodies = result_bodies(result.stdout)
    assert sorted(body["echo"] for body in bodies) == [1, 2, 3]  # type: ignore[type-var]
    assert {body["max_concurrency"] for body in bodies} == {"3"}
    summary = SUMMARY.search(result.stdout)
    assert summary is not None and summary[3] == "3", result.stdout


def test_one_at_a_time_by_default_and_no_managed_instances_variable(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"echo": 1}\n')
    result = run_cli("slow.handler", "--events", str(events), "--task-root", str(MI_ROOT))
    assert result.returncode == 0, result.stdout + result.stderr
    assert [body["max_concurrency"] for body in result_bodies(result.stdout)] == [None]
    summary = SUMMARY.search(result.stdout)
    assert summary is not None and summary[3] == "1", result.stdout


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_a_concurrency_below_1_is_refused(tmp_path: Path, value: str) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n")
    result = run_cli("slow.handler", "--events", str(events), "--concurrency", value)
    assert result.returncode == 2 and "is not a whole number of at least 1" in result.stderr, result.stderr


def test_serve_with_concurrency_does_not_reset_the_runtime_at_a_missed_deadline(tmp_path: Path) -> None:
    """On Managed Instances a missed deadline does not reset the execution environment (the other slots' requests
    would go with it): the caller gets Sandbox.Timedout, the same runtime process serves on."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "lambda_supervisor.supervisor", "serve", "deadlines.sleep", "--task-root",
             str(DEADLINES), "--port", str(port), "--timeout", "1", "--concurrency", "2"],
            env={**clean_environment(), "LAMBDA_SUPERVISOR_TIMEOUT_MARGIN_MS": "0"}, stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"
        try:
            assert isinstance(post_when_listening(url, b'{"seconds": 0}').json(), int)
            runtime_pids = [child.pid for child in psutil.Process(server.pid).children()]
            timed_out = requests.post(url, data=b'{"seconds": 30}', timeout=30)
            assert timed_out.json()["errorType"] == "Sandbox.Timedout", timed_out.text
            after = requests.post(url, data=b'{"seconds": 0}', timeout=60)
            assert after.status_code == 200 and isinstance(after.json(), int), after.text
            assert [child.pid for child in psutil.Process(server.pid).children()] == runtime_pids
        finally:
            server.send_signal(signal.SIGINT)
            assert server.wait(30) == 0
    log_text = log_path.read_text()
    assert "resetting the runtime" not in log_text and "concurrency 2" in log_text, log_text


def test_restarts_are_counted_by_reason_and_by_slot_when_the_lines_name_one() -> None:
    log = ("worker replaced: reason=crash request_id=a exit='signal SIGSEGV'\n"
           "worker replaced: reason=timeout request_id=b slot=2\n"
           '{"message": "worker replaced: reason=crash request_id=c slot=10", "slot": 10}\n'
           "worker replaced: slot=2 reason=memory request_id=d\n")
    assert restarts_in_log(log) == {"crash": 2, "timeout": 1, "memory": 1}
    assert restarts_by_slot(log) == {"2": 2, "10": 1}
    out = io.StringIO()
    summarize([Result(1, "ok", 1.0, "", True)], 0.5, restarts_in_log(log), out, 4, restarts_by_slot(log))
    lines = out.getvalue().splitlines()
    assert "1 invocations in 0.5 s, concurrency 4: 2.0 per second" in lines
    assert lines[-1] == "worker restarts by slot: slot 2: 2, slot 10: 1"
