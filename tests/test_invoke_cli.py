"""``lambda-supervisor invoke``: events files, percentiles, and whole runs against an embedded and a running runtime."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import StartRuntime, clean_environment
from lambda_supervisor.supervisor.invoke import EventFileError, load_events, percentile
from lambda_supervisor.supervisor.local import DEMO_TASK_ROOT


def run_cli(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lambda_supervisor.supervisor", "invoke", *arguments],
                          env={**clean_environment(), **(env or {})}, capture_output=True, text=True, timeout=120)


def summary_counts(stdout: str) -> dict[str, int]:
    table = stdout.split("outcome ", 1)[1].split("latency ms:", 1)[0]
    return {name: int(number) for name, number in re.findall(r"^(\S+)\s+(\d+)$", table, re.MULTILINE)}


def test_events_files_json_array_document_and_lines(tmp_path: Path) -> None:
    array = tmp_path / "array.json"
    array.write_text('[{"a": 1}, 2, "three"]')
    assert load_events(array) == [b'{"a": 1}', b"2", b'"three"']
    document = tmp_path / "one.json"
    document.write_text('{\n  "a": [1,\n 2]\n}\n')
    assert load_events(document) == [b'{\n  "a": [1,\n 2]\n}']
    lines = tmp_path / "events.jsonl"
    lines.write_text('{"a": 1}\n\n{"b": 2}\n')
    assert load_events(lines) == [b'{"a": 1}', b'{"b": 2}']
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(EventFileError, match=r"broken.jsonl:2: not JSON"):
        load_events(broken)


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50 and percentile(values, 0.99) == 99 and percentile([7.0], 0.99) == 7


def test_invoke_on_an_embedded_runtime_summarises_faults(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"action": "ok"}\n{"action": "raise"}\n{"action": "segfault"}\n{"action": "exit"}\n')
    log = tmp_path / "runtime.log"
    result = run_cli("app.handler", "--events", str(events), "--task-root", str(DEMO_TASK_ROOT), "-n", "6",
                     "--runtime-log", str(log), env={"LAMBDA_SUPERVISOR_REPORT": "on"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^\s+3  Runtime.ExitError\s+[\d.]+ ms  Runtime exited with error: signal SIGSEGV$",
                     result.stdout, re.MULTILINE), result.stdout
    assert summary_counts(result.stdout) == {"ok": 2, "ValueError": 2, "Runtime.ExitError": 2}
    assert re.search(r"^latency ms: p50 [\d.]+  p99 [\d.]+  max [\d.]+$", result.stdout, re.MULTILINE)
    assert "worker restarts: 2 (crash 2)" in result.stdout
    assert f"runtime log: {log}" in result.stdout
    assert log.read_text().count("REPORT RequestId:") == 6


def test_invoke_against_a_running_endpoint(start_runtime: StartRuntime, tmp_path: Path) -> None:
    runtime = start_runtime("faults.raise_error")
    events = tmp_path / "events.json"
    events.write_text('[{"detail": 1}, {"detail": 2}, {"detail": 3}]')
    result = run_cli("--url", runtime.emulator.invoke_url, "--events", str(events))
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary_counts(result.stdout) == {"ValueError": 3}
    assert "bad value: 2" in result.stdout
    assert "worker restarts" not in result.stdout  # no log to read from a remote endpoint


def test_invoke_needs_exactly_one_target(tmp_path: Path) -> None:
    events = tmp_path / "events.json"
    events.write_text("{}")
    result = run_cli("--events", str(events))
    assert result.returncode == 2 and "give either HANDLER" in result.stderr


def test_the_progress_line_overwrites_itself_on_a_terminal_only() -> None:
    import io

    from lambda_supervisor.supervisor.invoke import Progress, Result

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    progress = Progress(4, terminal)
    progress.update(Result(1, "ok", 3.0, "", True))
    progress.update(Result(2, "ValueError", 4.0, "", True))
    progress.clear()
    shown = terminal.getvalue()
    assert shown.startswith("\r[") and "2/4  ok 1  failed 1  last 4.0 ms" in shown and shown.endswith("\r\033[K")
    pipe = io.StringIO()
    Progress(4, pipe).update(Result(1, "ok", 3.0, "", True))
    assert pipe.getvalue() == ""
