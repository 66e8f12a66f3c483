"""The bootstrap as a child process of a local tool, against an emulator, started as Lambda starts it; and reset
(its whole process tree killed, a new one started) as Lambda resets an execution environment."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import psutil

from .emulator.records import InvocationRecord
from .emulator.server import RuntimeApiEmulator


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
    # -P: the working directory (often the task root) must not shadow the supervisor's own imports; -P -u as the
    # bootstraps: the worker's own flags, so that the first worker is this interpreter forked (early_worker.py)
    command = [sys.executable, "-P", "-u", "-m", "lambda_supervisor.supervisor", "run", handler, "--task-root",
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

