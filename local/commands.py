"""Running a function on a laptop: the emulator in this process, the bootstrap as a child, as on Lambda.

``serve`` keeps both up for curl; ``demo`` drives the bundled sample function through every kind of fault and
prints what happened. Either way the runtime is the real bootstrap process (``lambda-supervisor run``) talking
HTTP to the emulator, exactly as it would talk to Lambda.
"""

from __future__ import annotations

import contextlib
import errno
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

import psutil

from lambda_supervisor.shared.printable import log_safe

from .emulator.records import InvocationRecord
from .emulator.server import RuntimeApiEmulator
from .exit_codes import ExitCode
from .logs import configure_tool_logging

DEMO_TASK_ROOT = Path(__file__).resolve().parent / "demo_app"


def start_runtime(emulator: RuntimeApiEmulator, handler: str, task_root: Path,
                  extra_env: Mapping[str, str] | None = None, output: IO[Any] | None = None) -> subprocess.Popen[bytes]:
    """Start the bootstrap against ``emulator``, the way Lambda starts it: the handler as its argument. Its output
    goes to ``output`` (default: ours)."""
    env = dict(os.environ)
    env.update(extra_env or {})
    # Readable output on a terminal: no CloudWatch metric objects unless asked for (the REPORT line is opt-in too).
    env.setdefault("LAMBDA_SUPERVISOR_METRICS", "off")
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


class ResettableRuntime:
    """The runtime process behind an emulator, killed and started again when an invocation's deadline passes
    unanswered (the emulator's ``on_timeout``), as Lambda resets the execution environment then."""

    def __init__(self, start: Callable[[], subprocess.Popen[bytes]], announce: bool = False) -> None:
        self._start = start
        self._announce = announce
        self._lock = threading.Condition()
        self._stopped = False
        self.resets = 0
        self.process = start()
        self._exit_seen: subprocess.Popen[bytes] | None = None  # the last process wait_exit reported

    def reset(self, record: InvocationRecord) -> None:
        self._replace(f"invocation {record.request_id} was not answered by its deadline; resetting the runtime, "
                      "as Lambda does")
        with self._lock:
            self.resets += 1

    def restart(self, why: str = "") -> None:
        """Start the runtime again after it exited (for the emulator's ``on_init_retry``)."""
        self._replace(f"{why}starting the runtime again for the new invocation, as Lambda retries a failed init")

    def _replace(self, announcement: str) -> None:
        with self._lock:
            if self._stopped:
                return
            if self._announce:
                print(f"lambda-supervisor: {announcement}", file=sys.stderr, flush=True)
            kill_process_tree(self.process.pid)
            self.process.wait()
            self.process = self._start()
            self._lock.notify_all()

    def wait_exit(self) -> int:
        """Block until the runtime exits on its own (a reset is not an exit); returns its status. Each process's
        exit is reported once: the next call waits for the one started after it."""
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self.process is not self._exit_seen)
                process = self.process
            status = process.wait()
            with self._lock:
                if process is self.process:
                    self._exit_seen = process
                    return status

    def stop(self, timeout_s: float = 10.0) -> int:
        with self._lock:
            self._stopped = True
        return stop_runtime(self.process, timeout_s)


def kill_process_tree(pid: int) -> None:
    """SIGKILL a process and every descendant: what Lambda does to an execution environment it resets."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for process in tree:
        with contextlib.suppress(psutil.Error):
            process.kill()


def serve(handler: str, task_root: Path, host: str, port: int, timeout_s: float) -> int:
    """Serve the invoke endpoint until SIGINT/SIGTERM. After a failed init the endpoint answers 502 with the init
    error, as AWS's emulator does, and the next invocation starts the runtime again (Lambda retries init then)."""
    configure_tool_logging("INFO")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        emulator = RuntimeApiEmulator(host, port, function_timeout_s=timeout_s)
    except OSError as error:
        hint = " (another serve, emulator or container uses it: choose another with --port)" \
            if error.errno == errno.EADDRINUSE else ""
        print(f"lambda-supervisor: cannot listen on {host}:{port}: {error.strerror or error}{hint}", file=sys.stderr)
        return ExitCode.INIT_FAILED
    with emulator:
        runtime = ResettableRuntime(lambda: start_runtime(emulator, handler, task_root), announce=True)
        emulator.on_timeout = runtime.reset
        emulator.on_init_retry = lambda: runtime.restart(_init_failure(emulator) + "; ")
        print(f"lambda-supervisor: serving {handler} from {task_root} (function timeout {timeout_s:g} s)\n"
              f"  curl -d '{{}}' {emulator.invoke_url}", file=sys.stderr, flush=True)
        exited = threading.Thread(target=_watch_runtime, args=(runtime, emulator, stop), daemon=True)
        exited.start()
        stop.wait()
        return runtime.stop()


def _watch_runtime(runtime: ResettableRuntime, emulator: RuntimeApiEmulator, stop: threading.Event) -> None:
    """``serve``'s watch on the runtime: an exit after an init error keeps the endpoint up; any other exit ends
    ``serve`` (nothing would answer)."""
    failures_seen = 0
    while True:
        status = runtime.wait_exit()
        failures = emulator.init_failures
        if failures == failures_seen:
            print(f"lambda-supervisor: the runtime exited with status {status}", file=sys.stderr, flush=True)
            stop.set()
            return
        failures_seen = failures
        print(f"lambda-supervisor: {_init_failure(emulator)}; the next invocation starts the runtime again (and "
              "gets 502 with the error if init fails again)", file=sys.stderr, flush=True)


def _init_failure(emulator: RuntimeApiEmulator) -> str:
    error = emulator.last_init_error
    what = f"{error.error_type}: {error.error_message}" if error is not None else "see the runtime's log"
    return f"init failed ({log_safe(what)[:300]})"


def invoke_embedded(handler: str, task_root: Path, events: list[bytes], count: int, timeout_s: float,
                    log_path: Path | None) -> int:
    """``invoke`` without ``--url``: an emulator and a runtime of our own; the runtime's log goes to a file."""
    from .invoke import restarts_in_log, send_all, summarize

    configure_tool_logging("WARNING")
    if log_path is None:
        log_path = Path(tempfile.mkstemp(prefix="lambda-supervisor-", suffix=".log")[1])
    with RuntimeApiEmulator(function_timeout_s=timeout_s) as emulator, log_path.open("wb") as log:
        runtime = ResettableRuntime(lambda: start_runtime(emulator, handler, task_root, output=log))
        emulator.on_timeout = runtime.reset
        try:
            _wait_until(lambda: emulator.next_poll_count >= 1 or runtime.process.poll() is not None, 120)
            started = time.monotonic()
            results = send_all(emulator.invoke_url, events, count, timeout_s + emulator.no_response_grace_s + 5)
            elapsed = time.monotonic() - started
            # let the runtime finish what follows the last answer (a respawn) before reading its log
            _wait_until(lambda: emulator.next_poll_count > count or runtime.process.poll() is not None, 60)
            died = runtime.process.poll() is not None
        finally:
            runtime.stop()
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
        runtime = ResettableRuntime(lambda: start_runtime(emulator, "app.handler", DEMO_TASK_ROOT,
                                                          {"LAMBDA_SUPERVISOR_MAX_RSS_MB": "200"}), announce=True)
        emulator.on_timeout = runtime.reset
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
            still_running = runtime.process.poll() is None and runtime.resets == 0
            runtime.stop()
    print(f"\n{'action':<10} {'outcome':<22} {'':<4} detail")
    for action, got, detail, matched in rows:
        print(f"{action:<10} {got:<22} {'ok' if matched else 'FAIL':<4} {detail}")
    passed = all(matched for *_, matched in rows) and still_running
    print(f"\n{sum(r[3] for r in rows)} of {len(rows)} invocations ended as expected; "
          f"the runtime {'survived them all' if still_running else 'DIED'}.")
    return 0 if passed else 1
