"""Starting a worker's interpreter: its command line, its environment, its pipes.

Kept apart from worker_process.py (which judges a running worker) so that the bootstrap can start the first
worker before it imports the rest of the supervisor: the worker's interpreter start and imports then overlap
the supervisor's own.
"""

from __future__ import annotations

import _signal as signal  # not signal.py: its enums cost every start (shared/signal_names.py)
import os
import sys
import time
from collections.abc import Mapping

from lambda_supervisor.shared import worker_env
from lambda_supervisor.shared.payload_region import PayloadRegion
from lambda_supervisor.shared.rlimits import format_rlimits
from lambda_supervisor.shared.worker_args import WORKER_COMMAND, WorkerArgs

from .early_worker import EarlyWorker, make_pipes, make_region_fd
from .frozen import Frozen

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's
if TYPE_CHECKING:
    from lambda_supervisor.shared.cpu_handoff import CpuHandoff

    from .config import Config


class Launched(Frozen):
    """A worker just started (with ``posix_spawn``, or forked by early_worker.py): its pid, the supervisor's ends of
    its pipes and its shared-memory region, mapped (None without one)."""

    __slots__ = ("from_read", "pid", "region", "started_monotonic", "to_write")
    pid: int
    to_write: int
    from_read: int
    started_monotonic: float
    region: PayloadRegion | None

    def __init__(self, pid: int, to_write: int, from_read: int, started_monotonic: float,
                 region: PayloadRegion | None = None) -> None:
        self._set(pid=pid, to_write=to_write, from_read=from_read, started_monotonic=started_monotonic, region=region)


def worker_environment(config: Config, environ: Mapping[str, str]) -> dict[str, str]:
    """The worker's environment: the Lambda environment minus the Runtime API address (and, with one slot, the log
    stream socket of Managed Instances), plus resolved settings."""
    withheld = {worker_env.RUNTIME_API} | ({worker_env.LOG_SOCKET} if config.concurrency <= 1 else set())
    env = {name: value for name, value in environ.items() if name not in withheld}
    env.update({
        worker_env.HANDLER: config.handler,
        worker_env.TASK_ROOT: str(config.task_root),
        worker_env.FUNCTION_NAME: config.function_name,
        worker_env.FUNCTION_VERSION: config.function_version,
        worker_env.FUNCTION_MEMORY_SIZE: str(config.memory_size_mb),
        worker_env.LOG_GROUP_NAME: config.log_group_name,
        worker_env.LOG_STREAM_NAME: config.log_stream_name,
        worker_env.MAX_RESPONSE_BYTES: str(config.max_response_bytes),
        worker_env.LOG_FORMAT: config.log_format,
        worker_env.LOG_LEVEL: config.app_log_level,
        worker_env.RLIMITS: format_rlimits(config.rlimits),
    })
    return env


def make_region(size: int) -> tuple[PayloadRegion | None, int | None]:
    """A worker's shared-memory region, mapped, and the descriptor to give it (see shared/payload_region.py);
    (None, None) where the kernel has no sealable memfd or it cannot be mapped: payloads then all take the pipe."""
    fd = make_region_fd(size)
    if fd is None:
        return None, None
    try:
        return PayloadRegion(fd, size), fd
    except OSError:
        os.close(fd)
        return None, None


def launch(config: Config, environ: Mapping[str, str], template_control_fd: int | None = None,
           cpu_handoff: CpuHandoff | None = None) -> Launched:
    """Start a fresh interpreter (no fork of this threaded process: ``posix_spawn``) in its own session, sharing only
    pipes (and, for the fork template, the control socket ``template_control_fd``). With ``cpu_handoff``, the
    worker waits on the supervisor's CPU and works on all of them. The worker moves to the task root itself (see
    worker/start.py): ``posix_spawn`` has no working directory to give."""
    (to_read, to_write), (from_read, from_write) = make_pipes()
    region, region_fd = make_region(config.max_frame_payload_bytes)
    arguments = WorkerArgs(in_fd=to_read, out_fd=from_write, parent_pid=os.getpid(),
                           template_control_fd=template_control_fd, cpu_handoff=cpu_handoff, region_fd=region_fd)
    command = [sys.executable, *WORKER_COMMAND, *arguments.to_argv()]
    started = time.monotonic()
    try:
        pid = os.posix_spawn(sys.executable, command, worker_environment(config, environ),
                             file_actions=_file_actions(arguments.inherited_fds), setsid=True,
                             setsigdef=RESTORED_SIGNALS)
    finally:
        for fd in (to_read, from_write) if region_fd is None else (to_read, from_write, region_fd):
            os.close(fd)
    return Launched(pid, to_write, from_read, started, region)


#: Set back to their default action in a worker, as ``subprocess`` does (Python ignores SIGPIPE and SIGXFSZ; an
#: ignored signal stays ignored across exec).
RESTORED_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


def _file_actions(inherited: tuple[int, ...]) -> list[tuple[int, ...] | tuple[int, int, str, int, int]]:
    """/dev/null as stdin, ``inherited`` kept across exec (a dup2 onto itself clears close-on-exec), and any other
    descriptor above stderr that would be inherited closed, as ``subprocess``'s ``close_fds`` would (the supervisor
    makes its own close-on-exec, so only what it was started with can be left)."""
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
    actions.extend((os.POSIX_SPAWN_DUP2, fd, fd) for fd in inherited)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in inherited:
            try:
                if os.get_inheritable(fd):
                    actions.append((os.POSIX_SPAWN_CLOSE, fd))
            except OSError:  # the listing's own descriptor, closed by now
                continue
    return actions


def claim(early: EarlyWorker, config: Config, environ: Mapping[str, str],
          cpu_handoff: CpuHandoff | None) -> Launched | None:
    """The worker started from the bootstrap's first lines (early_worker.py), released to run the user's init if
    it was started exactly as :func:`launch` would start it now; else it is discarded (None)."""
    if early.environment != worker_environment(config, environ) or early.cpu_handoff != cpu_handoff:
        early.discard()
        return None
    try:
        region = _map_early_region(early, config.max_frame_payload_bytes)
    except (OSError, ValueError):  # the worker would put large results where we could not read them
        early.discard()
        return None
    if not early.release():  # it died while held: one started the ordinary way inits instead
        if region is not None:
            region.close()
        early.discard()
        return None
    return Launched(early.pid, early.to_write, early.from_read, early.started_monotonic, region)


def _map_early_region(early: EarlyWorker, size: int) -> PayloadRegion | None:
    """The early worker's region (None: it has none), mapped now that ``mmap`` may be imported. Raises OSError if it
    cannot be mapped, ValueError if it is not the ``size`` bytes :func:`launch` would give it."""
    fd, early.region_fd = early.region_fd, None  # attach closes it
    if fd is None:
        return None
    region = PayloadRegion.attach(fd)
    if region.size != size:
        raise ValueError(f"a region of {region.size} bytes, not {size}")
    return region
