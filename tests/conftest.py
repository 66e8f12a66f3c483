"""Fixtures that run the real bootstrap process against a real emulator on loopback.

Nothing of ours is mocked: each test gets a RuntimeApiEmulator on an ephemeral port and a
``python -m lambda_supervisor.supervisor run`` process pointed at it, whose stdout goes to a log file the test can
read. Teardown stops the runtime with SIGTERM (SIGKILL if it does not go) and the emulator.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from lambda_supervisor.local.emulator.records import InvocationRecord
from lambda_supervisor.local.emulator.server import RuntimeApiEmulator
from lambda_supervisor.local.runtime import kill_process_tree

TASK_ROOTS = Path(__file__).parent / "task_roots"
FAULTS = TASK_ROOTS / "faults"
INIT_ERRORS_ROOT = TASK_ROOTS / "init_errors"


def clean_environment() -> dict[str, str]:
    """This process's environment without anything Lambda-ish that could leak in from the machine."""
    return {
        name: value
        for name, value in os.environ.items()
        if not (name.startswith(("AWS_", "LAMBDA_", "_HANDLER", "_X_AMZN")))
    }


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll a cheap predicate until it holds; for state only visible from outside (a file, a process table)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    """A loopback port nothing listens on right now (for servers that need a fixed port, like `serve`)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def post_when_listening(url: str, body: bytes, timeout: float = 60.0) -> requests.Response:
    """POST once a server that is still starting accepts connections."""

    def answered() -> requests.Response | None:
        try:
            return requests.post(url, data=body, timeout=30)
        except requests.ConnectionError:
            return None

    return wait_for(answered, timeout, f"{url} to answer")  # type: ignore[no-any-return]


def process_gone(pid: int) -> bool:
    """True when pid has been reaped (a zombie nobody has reaped yet is not gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_DEAD
    except psutil.NoSuchProcess:
        return True


def process_dead(pid: int) -> bool:
    """True when pid no longer runs, reaped or not."""
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return True


@dataclass
class Runtime:
    emulator: RuntimeApiEmulator
    process: subprocess.Popen[bytes]
    log_path: Path
    _log_file: Any = field(repr=False, default=None)
    _command: list[str] = field(repr=False, default_factory=list)
    _environment: dict[str, str] = field(repr=False, default_factory=dict)
    _cwd: Path | None = field(repr=False, default=None)  # where the runtime starts (default: ours)
    _run_as: int | None = field(repr=False, default=None)
    resets: list[str] = field(default_factory=list)  # request ids whose timeout made the emulator reset us
    _lock: threading.Lock = field(repr=False, default_factory=threading.Lock)
    _stopped: bool = False

    def launch(self) -> None:
        run_as = self._run_as  # this uid and gid, with no supplementary groups (a test must check it may switch)
        self.process = subprocess.Popen(self._command, env=self._environment, stdout=self._log_file,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self._cwd,
                                        user=run_as, group=run_as, extra_groups=[] if run_as is not None else None)

    def reset(self, record: InvocationRecord) -> None:
        """The emulator's ``on_timeout``: like Lambda after a timeout, kill the runtime and start it again."""
        with self._lock:
            if self._stopped:
                return
            kill_process_tree(self.process.pid)
            self.process.wait()
            self._log_file.write(f"--- test: runtime reset after {record.request_id} timed out ---\n".encode())
            self._log_file.flush()
            self.launch()
            self.resets.append(record.request_id)  # last: a test that sees it sees the new process too

    def invoke(self, event: Any = b"", wait: float = 60.0, **kwargs: Any) -> InvocationRecord:
        """Invoke and wait until the runtime has polled ``next`` once more. Whatever it does before it asks is
        done when this returns: a respawn after a fault, a recycle that was due. With ``next`` pipelined into the
        post (the default), what it does while the post is in flight and after (the REPORT line, a recycle found
        by the memory read then) may still be under way: wait for those with :meth:`wait_log`."""
        polls = self.emulator.next_poll_count
        record = self.emulator.invoke(event, wait=wait, **kwargs)
        self.emulator.wait_next_polled(polls + 1, timeout=wait)
        assert len(record.posts) == 1, f"expected exactly one post, got {record.describe()}"
        return record

    def log(self) -> str:
        """The runtime's output as written: a "\r" inside a line stays (no universal-newline translation)."""
        return self.log_path.read_bytes().decode(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 30.0) -> str:
        """The log, once ``pattern`` (a regular expression, multi-line) is found in it."""
        def found() -> str:
            log = self.log()
            return log if re.search(pattern, log, re.MULTILINE) else ""

        return str(wait_for(found, timeout, what=f"{pattern!r} in the runtime's log"))

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout)

    def stop(self) -> int:
        with self._lock:
            self._stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file is not None:
            self._log_file.close()
        return self.process.returncode


StartRuntime = Callable[..., Runtime]


@pytest.fixture
def start_runtime(tmp_path: Path) -> Iterator[StartRuntime]:
    started: list[Runtime] = []

    def start(
        handler: str = "faults.echo",
        *,
        task_root: Path = FAULTS,
        timeout_s: float = 10.0,
        env: dict[str, str] | None = None,
        wait_ready: bool = True,
        command: list[str] | None = None,
        cwd: Path | None = None,
        run_as: int | None = None,
        python: str = sys.executable,
    ) -> Runtime:
        """``command`` replaces ``python -m lambda_supervisor.supervisor run`` (another entry point), run in
        ``cwd`` (default: ours; on Lambda it is the task root)."""
        emulator = RuntimeApiEmulator(function_timeout_s=timeout_s, function_name="test-function").start()
        environment = clean_environment()
        environment.update(
            AWS_LAMBDA_RUNTIME_API=emulator.address,
            _HANDLER=handler,
            LAMBDA_TASK_ROOT=str(task_root),
            AWS_LAMBDA_FUNCTION_NAME="test-function",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
            LAMBDA_SUPERVISOR_LOG_LEVEL="DEBUG",
            LAMBDA_SUPERVISOR_API_RETRY_S="2",
        )
        # the whole suite can be run under another respawn strategy: TEST_RESPAWN_STRATEGY=fork pytest
        if os.environ.get("TEST_RESPAWN_STRATEGY"):
            environment["LAMBDA_SUPERVISOR_RESPAWN"] = os.environ["TEST_RESPAWN_STRATEGY"]
        environment.update(env or {})
        log_path = tmp_path / f"runtime-{len(started)}.log"
        log_file = log_path.open("wb")
        # -P -u: as the bootstraps start it (then the first worker is the bootstrap's interpreter, forked)
        bootstrap = [python, "-P", "-u", "-m", "lambda_supervisor.supervisor", "run"]
        runtime = Runtime(emulator, None, log_path, log_file,  # type: ignore[arg-type]
                          command or bootstrap, environment, cwd, run_as)
        runtime.launch()
        emulator.on_timeout = runtime.reset  # a timeout the runtime did not answer in time resets it, as on Lambda
        started.append(runtime)
        if wait_ready:
            emulator.wait_next_polled(1, timeout=60)
        return runtime

    yield start
    for runtime in started:
        runtime.stop()
        runtime.emulator.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak-invocations", type=int, default=None,
                     help="run the soak test for this many invocations instead of its short CI form")


def pytest_configure(config: pytest.Config) -> None:
    """``--soak-invocations N`` is the flag form of LAMBDA_SUPERVISOR_SOAK=N (set before test modules load)."""
    count = config.getoption("--soak-invocations")
    if count is not None:
        os.environ["LAMBDA_SUPERVISOR_SOAK"] = str(count)
