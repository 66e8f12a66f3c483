"""Looking at a running supervisor from outside: its children, zombies, descriptors, memory, and every process a
handler started (found by the SOAK_MARKER the test put in the runtime's environment, wherever it was re-parented)."""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Any

import psutil

from conftest import TASK_ROOTS, Runtime, StartRuntime

SOAK = TASK_ROOTS / "soak"


def start_soak(start_runtime: StartRuntime, **env: Any) -> tuple[Runtime, str]:
    """A runtime serving the soak handler, with a fresh SOAK_MARKER; returns it and the marker."""
    marker = uuid.uuid4().hex
    runtime = start_runtime("soak.handler", task_root=SOAK, env={"SOAK_MARKER": marker, **env})
    return runtime, marker


def marked_processes(marker: str) -> list[psutil.Process]:
    """Every live (non-zombie) process whose environment carries SOAK_MARKER=marker."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get("SOAK_MARKER") == marker:
                found.append(process)
    return found


def supervisor_children(supervisor_pid: int) -> list[psutil.Process]:
    return list(psutil.Process(supervisor_pid).children())


def zombie_children(supervisor_pid: int) -> list[int]:
    zombies = []
    for child in supervisor_children(supervisor_pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.status() == psutil.STATUS_ZOMBIE:
                zombies.append(child.pid)
    return zombies


def worker_processes(supervisor_pid: int) -> list[psutil.Process]:
    """The supervisor's worker processes: the active one, and under `spare` the standby or under `fork` the
    template. A process a handler started carries SOAK_WORKER; every other child of the supervisor is a worker,
    whatever its command line says (one just forked still shows the supervisor's until it has exec'd)."""
    workers = []
    for child in supervisor_children(supervisor_pid):
        with contextlib.suppress(psutil.Error):
            if "SOAK_WORKER" not in child.environ() and child.status() != psutil.STATUS_ZOMBIE:
                workers.append(child)
    return workers


def strays(supervisor_pid: int, marker: str) -> list[str]:
    """Marked processes that belong to no live worker: not the supervisor, not one of its workers, not started by
    one (SOAK_WORKER) nor descended from one. What a dead worker left behind, described for an assertion message."""
    allowed = {supervisor_pid}
    live_workers = set()
    for worker in worker_processes(supervisor_pid):
        live_workers.add(str(worker.pid))
        allowed.add(worker.pid)
        with contextlib.suppress(psutil.Error):
            allowed.update(child.pid for child in worker.children(recursive=True))
    left = []
    for process in marked_processes(marker):
        with contextlib.suppress(psutil.Error):
            if process.pid in allowed or process.environ().get("SOAK_WORKER") in live_workers:
                continue
            left.append(f"{process.pid} {process.cmdline()} ppid={process.ppid()} "
                        f"started by worker {process.environ().get('SOAK_WORKER')}")
    return left


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_targets(pid: int) -> dict[int, str]:
    targets = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            targets[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
    return targets


def rss_bytes(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)
