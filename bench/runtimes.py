"""Starting and stopping the runtimes under test, each as its own bootstrap process against the bench emulator.

Every process started here is registered, so that :func:`stop_all` (called on exit, failure and Ctrl-C) ends it:
SIGTERM to its process group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path

from .install import runtime_python

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class RuntimeApiHost(Protocol):
        """What a runtime under test is started against: the bench emulator, or the lean Runtime API."""

        @property
        def address(self) -> str: ...

        @property
        def next_poll_count(self) -> int: ...

        def wait_next_polled(self, count: int = 1, timeout: float = 30.0) -> None: ...

BENCH_DIR = Path(__file__).resolve().parent
TASK_ROOT = BENCH_DIR / "task_root"
LOG_DIR = BENCH_DIR / "results" / "logs"
STRATEGIES = ("fresh", "spare", "fork")
RESPAWN_VARIABLE = "LAMBDA_SUPERVISOR_RESPAWN"
CONFIG_ERROR_EXIT = 3

_started: list[subprocess.Popen[bytes]] = []
_started_lock = threading.Lock()


class Unsupported(Exception):
    """The installed supervisor does not know (or rejected) the respawn strategy asked for."""


def clean_environment() -> dict[str, str]:
    """This process's environment without anything Lambda-ish, and no proxy: traffic stays on loopback."""
    return {
        name: value for name, value in os.environ.items()
        if not name.startswith(("AWS_", "LAMBDA_", "_HANDLER", "_X_AMZN"))
        and name.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }


def awslambdaric_installed() -> bool:
    return importlib.util.find_spec("awslambdaric") is not None


def strategy_supported(strategy: str) -> bool:
    """Whether the installed supervisor has this respawn strategy, judged from its declared settings.

    Before LAMBDA_SUPERVISOR_RESPAWN exists, the supervisor ignores the variable and always respawns "fresh", so only
    "fresh" is real; afterwards the setting's own parser decides. (A supervisor that still rejects the value at
    start-up, exiting with the configuration-error status, is caught by :func:`start_supervisor` as well.)
    """
    from lambda_supervisor.supervisor.config import SETTINGS

    setting = next((s for s in SETTINGS if s.variable == RESPAWN_VARIABLE), None)
    if setting is None:
        return strategy == "fresh"
    try:
        setting.parse(strategy)
    except ValueError:
        return False
    return True


def _spawn(name: str, command: list[str], env: Mapping[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (LOG_DIR / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(command, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    with _started_lock:
        _started.append(process)
    return process


def stop(process: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM the process's group, SIGKILL it after ``grace_s``; reaps it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace_s)
    # The group may outlive its leader (a worker in another session ends with its supervisor by PDEATHSIG).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
        process.wait()
    with _started_lock:
        if process in _started:
            _started.remove(process)


def stop_all() -> None:
    with _started_lock:
        processes = list(_started)
    for process in processes:
        stop(process, grace_s=2.0)


class Runtime:
    """One runtime under test, started against ``emulator``; ``pid`` is its bootstrap process."""

    kind = "?"

    def __init__(self, emulator: RuntimeApiHost, handler: str) -> None:
        self.emulator = emulator
        self.handler = handler
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        env = clean_environment()
        env.update(AWS_LAMBDA_RUNTIME_API=self.emulator.address, AWS_LAMBDA_FUNCTION_NAME="bench",
                   AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024")
        return env

    def start(self, ready_timeout_s: float = 60.0) -> Runtime:
        """Start the bootstrap and wait until it polls ``next`` (init done)."""
        polls = self.emulator.next_poll_count
        self.process = _spawn(self.kind, self.command(), self.environment(), TASK_ROOT)
        self._wait_polled(polls + 1, ready_timeout_s)
        return self

    def _wait_polled(self, count: int, timeout_s: float) -> None:
        waited = 0.0
        while True:
            try:
                self.emulator.wait_next_polled(count, timeout=0.1)
                return
            except TimeoutError:
                waited += 0.1
            if self.process is not None and self.process.poll() is not None:
                self._exited_early(self.process.returncode)
            if waited >= timeout_s:
                raise TimeoutError(f"{self.kind} did not poll next within {timeout_s} s")

    def _exited_early(self, status: int) -> None:
        raise RuntimeError(f"{self.kind} exited with status {status} before it was ready; see {LOG_DIR}")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


class Supervisor(Runtime):
    kind = "lambda-supervisor"

    def __init__(self, emulator: RuntimeApiHost, handler: str, strategy: str | None = None,
                 extra_env: Mapping[str, str] | None = None) -> None:
        super().__init__(emulator, handler)
        self.strategy = strategy
        self.extra_env = dict(extra_env or {})

    def command(self) -> list[str]:
        return [runtime_python(), "-P", "-u", "-m", "lambda_supervisor.supervisor", "run", self.handler, "--task-root",
                str(TASK_ROOT)]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        if self.strategy is not None:
            env[RESPAWN_VARIABLE] = self.strategy
        env.update(self.extra_env)
        return env

    def start(self, ready_timeout_s: float = 60.0) -> Runtime:
        if self.strategy is not None and not strategy_supported(self.strategy):
            raise Unsupported(self.strategy)
        return super().start(ready_timeout_s)

    def _exited_early(self, status: int) -> None:
        if self.strategy is not None and status == CONFIG_ERROR_EXIT:
            raise Unsupported(self.strategy)
        super()._exited_early(status)


class AwsLambdaRic(Runtime):
    """awslambdaric as its own bootstrap. With ``restart``, a new process replaces one that exits, as Lambda would
    start a new execution environment (init included) after the runtime process dies."""

    kind = "awslambdaric"

    def __init__(self, emulator: RuntimeApiHost, handler: str, *, restart: bool = False) -> None:
        super().__init__(emulator, handler)
        self.restart = restart
        self.restarts = 0
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def command(self) -> list[str]:
        return [runtime_python(), "-m", "awslambdaric", self.handler]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.update(PYTHONPATH=str(TASK_ROOT), LAMBDA_TASK_ROOT=str(TASK_ROOT), _HANDLER=self.handler)
        return env

    def start(self, ready_timeout_s: float = 60.0) -> Runtime:
        super().start(ready_timeout_s)
        if self.restart:
            self._watcher = threading.Thread(target=self._watch, daemon=True, name="awslambdaric-restarter")
            self._watcher.start()
        return self

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self.process
            assert process is not None
            try:
                process.wait(0.05)
            except subprocess.TimeoutExpired:
                continue
            if self._stopping.is_set():
                return
            stop(process, grace_s=0)  # reap and unregister it
            self.restarts += 1
            self.process = _spawn(self.kind, self.command(), self.environment(), TASK_ROOT)

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        super().stop()


class Floor(Runtime):
    """The in-process floor loop, with requests (what the supervisor uses) as its HTTP client."""

    kind = "floor"
    client = "requests"

    def command(self) -> list[str]:
        return [runtime_python(), str(BENCH_DIR / "floor.py"), "--client", self.client, self.handler]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env["PYTHONPATH"] = str(TASK_ROOT)
        return env


class FloorHttpClient(Floor):
    """The same loop over the standard library's http.client: what the HTTP legs cost without requests."""

    kind = "floor-http.client"
    client = "http.client"


class FloorOurClient(Floor):
    """The same loop over the supervisor's own Runtime API connection: the floor lambda-supervisor is measured
    against, everything but the worker process."""

    kind = "floor-ours"
    client = "ours"


class FloorTwoProcesses(Floor):
    """The same connection, the handler in a second process behind a pipe, both on one CPU: the least the
    supervisor's design costs."""

    kind = "floor-two-processes"
    client = "ours-two-processes"
