"""``lambda-supervisor invoke``: events files, percentiles, and whole runs against an embedded and a running runtime."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from conftest import StartRuntime, clean_environment, free_port, wait_for
from lambda_supervisor.local.commands import DEMO_TASK_ROOT
from lambda_supervisor.local.emulator.server import RuntimeApiEmulator
from lambda_supervisor.local.invoke import EventFileError, load_events, percentile


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
                     "--runtime-log", str(log),
                     env={"LAMBDA_SUPERVISOR_REPORT": "on", "LAMBDA_SUPERVISOR_METRICS": "on"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^\s+3  Runtime.ExitError\s+[\d.]+ ms  Runtime exited with error: signal SIGSEGV$",
                     result.stdout, re.MULTILINE), result.stdout
    assert summary_counts(result.stdout) == {"ok": 2, "ValueError": 2, "Runtime.ExitError": 2}
    assert re.search(r"^latency ms: p50 [\d.]+  p99 [\d.]+  max [\d.]+$", result.stdout, re.MULTILINE)
    assert "worker restarts: 2 (crash 2)" in result.stdout
    assert f"runtime log: {log}" in result.stdout
    assert log.read_text().count("REPORT RequestId:") == 6
    assert '{"_aws":' in log.read_text(), "metrics are off locally only when the user did not ask for them"


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

    from lambda_supervisor.local.invoke import Progress, Result

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


# -- the command line as a new user meets it ---------------------------------------------------------------------

def lambda_supervisor(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lambda_supervisor.supervisor", *arguments],
                          env={**clean_environment(), **(env or {})}, capture_output=True, text=True, timeout=120)


def test_help_lists_every_command() -> None:
    result = lambda_supervisor("--help")
    assert result.returncode == 0, result.stderr
    for command in ("run", "serve", "invoke", "demo"):
        assert re.search(rf"^  {command}  ", result.stdout, re.MULTILINE), result.stdout
    assert "AWS_LAMBDA_RUNTIME_API" in result.stdout, "the settings are listed too"


def test_a_mistyped_command_is_named_and_a_handler_alone_still_means_run() -> None:
    """The rule: a first word that is not a command is the bootstrap's handler if it has a dot (module.function),
    else a mistyped command."""
    typo = lambda_supervisor("serv", "app.handler")
    assert typo.returncode == 2
    assert typo.stderr.startswith("lambda-supervisor: unknown command 'serv' (did you mean 'serve'?)"), typo.stderr
    assert lambda_supervisor("frobnicate").stderr.startswith("lambda-supervisor: unknown command 'frobnicate';")
    bootstrap = lambda_supervisor("app.handler")  # the image form, CMD ["app.handler"]: run, here without a Runtime API
    assert bootstrap.returncode == 3 and "AWS_LAMBDA_RUNTIME_API" in bootstrap.stdout + bootstrap.stderr


def test_invoke_count_zero_is_refused_and_sends_nothing(tmp_path: Path) -> None:
    """-n 0 is refused rather than sending nothing: it is a slip (an empty shell variable), and a summary of no
    invocations would pass silently. (Before, 0 meant "the whole file".)"""
    events = tmp_path / "events.json"
    events.write_text("[{}, {}]")
    with RuntimeApiEmulator() as emulator:
        result = run_cli("--url", emulator.invoke_url, "--events", str(events), "-n", "0")
        assert result.returncode == 2 and "--count must be at least 1" in result.stderr
        assert emulator.records() == []


@pytest.mark.parametrize(("command", "module"), [("invoke", "requests"), ("serve", "loguru"), ("demo", "loguru")])
def test_a_local_tool_without_the_local_extra_names_what_to_install(tmp_path: Path, command: str, module: str) -> None:
    """requests and loguru are the [local] extra's: the bootstrap does not need them, and where they are not
    installed a local tool says how to get them."""
    events = tmp_path / "events.json"
    events.write_text("[{}]")
    arguments = {"invoke": ["--url", "http://127.0.0.1:9/", "--events", str(events)],
                 "serve": ["app.handler", "--port", "9"], "demo": []}[command]
    not_installed = (f"import sys; sys.modules[{module!r}] = None; "  # what its import meets when it is absent
                     "from lambda_supervisor.supervisor.cli import main; raise SystemExit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", not_installed, command, *arguments], env=clean_environment(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1].endswith(
        f"{command} needs {module}, which is not installed: pip install 'lambda-supervisor[local]'"), result.stderr


def test_serve_on_a_port_in_use_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = lambda_supervisor("serve", "app.handler", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"lambda-supervisor: cannot listen on 127.0.0.1:{port}: Address already in use (another serve, emulator or "
        "container uses it: choose another with --port)"], result.stderr


def test_serve_states_its_default_timeout() -> None:
    text = " ".join(lambda_supervisor("serve", "--help").stdout.split())
    assert "default: $AWS_LAMBDA_FUNCTION_TIMEOUT, else 3, Lambda's default; AWS's emulator defaults to 300" in text


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except OSError:
        return False
    return True


WORKING_APP = """import os, signal

def handler(event, context):
    if event.get("action") == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    return {"fixed": True}
"""


def test_serve_keeps_serving_after_a_failed_init_and_prints_no_metrics(tmp_path: Path) -> None:
    """As AWS's emulator, an invocation of a function whose init failed gets 502 and the init error; as Lambda, the
    next invocation initialises again, so fixing the code is enough. The output has no EMF objects by default."""
    task_root = tmp_path / "task"
    task_root.mkdir()
    (task_root / "app.py").write_text('raise ValueError("broken on import")\n')
    port = free_port()
    url = f"http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "lambda_supervisor.supervisor", "serve", "app.handler", "--task-root",
             str(task_root), "--port", str(port)], env={**clean_environment(), "PYTHONDONTWRITEBYTECODE": "1"},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_for(lambda: listening(port), 60, "serve to listen")
            broken = requests.post(url, data=b"{}", timeout=60)
            assert broken.status_code == 502, broken.text
            assert broken.json()["errorType"] == "ValueError" and broken.json()["errorMessage"] == "broken on import"
            assert requests.post(url, data=b"{}", timeout=60).status_code == 502, "still broken, still serving"
            (task_root / "app.py").write_text(WORKING_APP)
            assert requests.post(url, data=b"{}", timeout=60).json() == {"fixed": True}
            crash = requests.post(url, data=b'{"action": "crash"}', timeout=60)
            assert crash.json()["errorType"] == "Runtime.ExitError"
            assert requests.post(url, data=b"{}", timeout=60).json() == {"fixed": True}
            assert server.poll() is None
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)
    text = log_path.read_text(errors="replace")
    assert "lambda-supervisor: init failed (ValueError: broken on import)" in text, text
    assert "worker replaced: reason=crash" in text and '"_aws"' not in text, text
