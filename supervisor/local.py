"""Running a function on a laptop: the emulator in this process, the bootstrap as a child, as on Lambda.

``serve`` keeps both up for curl; ``demo`` drives the bundled sample function through every kind of fault and
prints what happened. Either way the runtime is the real bootstrap process (``lambda-supervisor run``) talking
HTTP to the emulator, exactly as it would talk to Lambda.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .emulator.server import RuntimeApiEmulator
from .logs import configure_tool_logging

DEMO_TASK_ROOT = Path(__file__).resolve().parent / "demo_app"


def start_runtime(emulator: RuntimeApiEmulator, handler: str, task_root: Path,
                  extra_env: Mapping[str, str] | None = None, output: IO[Any] | None = None) -> subprocess.Popen[bytes]:
    """Start the bootstrap against ``emulator``, the way Lambda starts it: the handler as its argument. Its output
    goes to ``output`` (default: ours)."""
    env = dict(os.environ)
    env.update(extra_env or {})
    env["AWS_LAMBDA_RUNTIME_API"] = emulator.address
    env.setdefault("AWS_LAMBDA_FUNCTION_NAME", emulator.function_name)
    # -P: the working directory (often the task root) must not shadow the supervisor's own imports
    command = [sys.executable, "-P", "-m", "lambda_supervisor.supervisor", "run", handler, "--task-root",
               str(task_root)]
    return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=output,
                            stderr=subprocess.STDOUT if output is not None else None)


def stop_runtime(runtime: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
    if runtime.poll() is None:
        runtime.send_signal(signal.SIGTERM)
        try:
            runtime.wait(timeout_s)
        except subprocess.TimeoutExpired:
            runtime.kill()
            runtime.wait()
    return runtime.returncode


def serve(handler: str, task_root: Path, host: str, port: int, timeout_s: float) -> int:
    """Serve the invoke endpoint until SIGINT/SIGTERM."""
    configure_tool_logging("INFO")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with RuntimeApiEmulator(host, port, function_timeout_s=timeout_s) as emulator:
        runtime = start_runtime(emulator, handler, task_root)
        print(f"lambda-supervisor: serving {handler} from {task_root}\n"
              f"  curl -d '{{}}' {emulator.invoke_url}", file=sys.stderr, flush=True)
        def stop_when_runtime_exits() -> None:
            runtime.wait()
            stop.set()

        watcher = threading.Thread(target=stop_when_runtime_exits, daemon=True)
        watcher.start()
        stop.wait()
        if runtime.poll() is not None:
            print(f"lambda-supervisor: the runtime exited with status {runtime.returncode}", file=sys.stderr)
        return stop_runtime(runtime)


def invoke_embedded(handler: str, task_root: Path, events: list[bytes], count: int, timeout_s: float,
                    log_path: Path | None) -> int:
    """``invoke`` without ``--url``: an emulator and a runtime of our own; the runtime's log goes to a file."""
    from .invoke import restarts_in_log, send_all, summarize

    configure_tool_logging("WARNING")
    if log_path is None:
        log_path = Path(tempfile.mkstemp(prefix="lambda-supervisor-", suffix=".log")[1])
    with RuntimeApiEmulator(function_timeout_s=timeout_s) as emulator, log_path.open("wb") as log:
        runtime = start_runtime(emulator, handler, task_root, output=log)
        try:
            _wait_until(lambda: emulator.next_poll_count >= 1 or runtime.poll() is not None, 120)
            started = time.monotonic()
            results = send_all(emulator.invoke_url, events, count, timeout_s + emulator.no_response_grace_s + 5)
            elapsed = time.monotonic() - started
            # let the runtime finish what follows the last answer (a respawn) before reading its log
            _wait_until(lambda: emulator.next_poll_count > count or runtime.poll() is not None, 60)
            died = runtime.poll() is not None
        finally:
            stop_runtime(runtime)
    summarize(results, elapsed, restarts_in_log(log_path.read_bytes().decode(errors="replace")), sys.stdout)
    print(f"runtime log: {log_path}" + ("  (the runtime exited early!)" if died else ""))
    return 1 if died or not all(result.answered for result in results) else 0


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """For a condition on another process: poll briefly until it holds or ``timeout_s`` passes."""
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


@dataclass(frozen=True)
class DemoStep:
    action: str
    expected: str  # "ok" or the errorType the invocation must fail with


DEMO_STEPS = (
    DemoStep("ok", "ok"),
    DemoStep("raise", "ValueError"),
    DemoStep("segfault", "Runtime.ExitError"),
    DemoStep("ok", "ok"),
    DemoStep("exit", "Runtime.ExitError"),
    DemoStep("hang", "Runtime.Timeout"),
    DemoStep("memory", "Runtime.OutOfMemory"),
    DemoStep("ok", "ok"),
)


def demo() -> int:
    """Run the sample function through every fault on one runtime instance; 0 if each ended as expected."""
    configure_tool_logging("INFO")
    rows: list[tuple[str, str, str, bool]] = []
    with RuntimeApiEmulator(function_timeout_s=2.0, function_name="demo") as emulator:
        runtime = start_runtime(emulator, "app.handler", DEMO_TASK_ROOT, {"LAMBDA_SUPERVISOR_MAX_RSS_MB": "200"})
        try:
            for step in DEMO_STEPS:
                record = emulator.invoke({"action": step.action}, wait=60)
                if record.outcome_kind == "response":
                    got = "ok"
                    detail = f"pid {record.json().get('pid')}"
                else:
                    got = record.error.error_type or "?"
                    detail = (record.error.error_message or "").split(" Error: ", 1)[-1][:70]
                rows.append((step.action, got, detail, got == step.expected))
        finally:
            still_running = runtime.poll() is None
            stop_runtime(runtime)
    print(f"\n{'action':<10} {'outcome':<22} {'':<4} detail")
    for action, got, detail, matched in rows:
        print(f"{action:<10} {got:<22} {'ok' if matched else 'FAIL':<4} {detail}")
    passed = all(matched for *_, matched in rows) and still_running
    print(f"\n{sum(r[3] for r in rows)} of {len(rows)} invocations ended as expected; "
          f"the runtime {'survived them all' if still_running else 'DIED'}.")
    return 0 if passed else 1
