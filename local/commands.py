"""Running a function on a laptop: the emulator in this process, the bootstrap as a child, as on Lambda.

``serve`` keeps both up for curl; ``demo`` drives the bundled sample function through every kind of fault and
prints what happened; ``invoke`` (without ``--url``) sends a file of events through them. Either way the runtime is
the real bootstrap process (``lambda-supervisor run``) talking HTTP to the emulator, exactly as it would talk to
Lambda.
"""

from __future__ import annotations

import errno
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lambda_supervisor.shared.printable import log_safe
from lambda_supervisor.supervisor.exit_codes import ExitCode

from .emulator.server import RuntimeApiEmulator
from .runtime import ResettableRuntime, start_runtime
from .tool_logging import configure_tool_logging

DEMO_TASK_ROOT = Path(__file__).resolve().parent / "demo_app"
_SLOTS_READY_S = 10.0  # after the first poll, how long a runtime started here has to open all its slots' polls


def serve(handler: str, task_root: Path, host: str, port: int, timeout_s: float, concurrency: int = 1) -> int:
    """Serve the invoke endpoint until SIGINT/SIGTERM. After a failed init the endpoint answers 502 with the init
    error, as AWS's emulator does, and the next invocation starts the runtime again (Lambda retries init then).
    Concurrent invocations are handed to the runtime's concurrent polls; with ``concurrency`` over 1 the runtime
    gets ``AWS_LAMBDA_MAX_CONCURRENCY`` and a missed deadline does not reset it, as on Managed Instances."""
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
        runtime = ResettableRuntime(lambda: start_runtime(emulator, handler, task_root, concurrency_env(concurrency)),
                                    announce=True)
        if concurrency == 1:
            emulator.on_timeout = runtime.reset
        emulator.on_init_retry = lambda: runtime.restart(_init_failure(emulator) + "; ")
        slots = f", concurrency {concurrency}" if concurrency > 1 else ""
        print(f"lambda-supervisor: serving {handler} from {task_root} (function timeout {timeout_s:g} s{slots})\n"
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
                    log_path: Path | None, concurrency: int = 1) -> int:
    """``invoke`` without ``--url``: an emulator and a runtime of our own; the runtime's log goes to a file. With
    ``concurrency`` over 1 the runtime gets ``AWS_LAMBDA_MAX_CONCURRENCY``, as on Lambda Managed Instances."""
    from .invoke import restarts_by_slot, restarts_in_log, send_all, summarize

    configure_tool_logging("WARNING")
    if log_path is None:
        log_path = Path(tempfile.mkstemp(prefix="lambda-supervisor-", suffix=".log")[1])
    with RuntimeApiEmulator(function_timeout_s=timeout_s) as emulator, log_path.open("wb") as log:
        runtime = ResettableRuntime(lambda: start_runtime(emulator, handler, task_root, concurrency_env(concurrency),
                                                          output=log))
        if concurrency == 1:
            emulator.on_timeout = runtime.reset  # not with several slots: a reset would kill the others' requests
        try:
            idle = _wait_ready(emulator, runtime, concurrency)
            started = time.monotonic()
            results = send_all(emulator.invoke_url, events, count, timeout_s + emulator.no_response_grace_s + 5,
                               concurrency=concurrency)
            elapsed = time.monotonic() - started
            # let the runtime finish what follows the last answers (respawns) before reading its log
            _wait_until(lambda: emulator.polls_waiting >= idle or runtime.process.poll() is not None, 60)
            died = runtime.process.poll() is not None
        finally:
            runtime.stop()
    log_text = log_path.read_bytes().decode(errors="replace")
    summarize(results, elapsed, restarts_in_log(log_text), sys.stdout, concurrency, restarts_by_slot(log_text))
    print(f"runtime log: {log_path}" + ("  (the runtime exited early!)" if died else ""))
    return 1 if died or not all(result.answered for result in results) else 0


def concurrency_env(concurrency: int) -> dict[str, str]:
    """The runtime's environment for ``concurrency`` requests at once: Managed Instances' variable when over 1."""
    return {"AWS_LAMBDA_MAX_CONCURRENCY": str(concurrency)} if concurrency > 1 else {}


def _wait_ready(emulator: RuntimeApiEmulator, runtime: ResettableRuntime, concurrency: int) -> int:
    """Wait until the runtime polls ``next`` (init done), then briefly for all its slots to; returns how many
    polls wait while it is idle. A runtime with fewer slots than asked for is used as it is."""
    _wait_until(lambda: emulator.next_poll_count >= 1 or runtime.process.poll() is not None, 120)
    _wait_until(lambda: emulator.polls_waiting >= concurrency or runtime.process.poll() is not None,
                _SLOTS_READY_S)
    return max(1, emulator.polls_waiting)


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
