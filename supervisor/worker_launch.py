"""Starting a worker's interpreter: its command line, its environment, its pipes.

Kept apart from worker_process.py (which judges a running worker) so that the bootstrap can start the first
worker before it imports the rest of the supervisor: the worker's interpreter start and imports then overlap
the supervisor's own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from lambda_supervisor.shared import worker_env
from lambda_supervisor.shared.payload_region import PayloadRegion
from lambda_supervisor.shared.rlimits import format_rlimits

if TYPE_CHECKING:
    from lambda_supervisor.shared.cpu_handoff import CpuHandoff

    from .config import Config

F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20


class Launched(NamedTuple):
    """A worker just started: its process and the supervisor's ends of its pipes."""

    process: subprocess.Popen[bytes]
    to_write: int
    from_read: int
    started_monotonic: float
    region: PayloadRegion | None = None


def worker_environment(config: Config, environ: Mapping[str, str]) -> dict[str, str]:
    """The worker's environment: the Lambda environment minus the Runtime API address, plus resolved settings."""
    env = {name: value for name, value in environ.items() if name != worker_env.RUNTIME_API}
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


def make_pipes() -> tuple[tuple[int, int], tuple[int, int]]:
    """(to_read, to_write), (from_read, from_write), with large buffers so a 1 MiB event is one write."""
    to_read, to_write = os.pipe()
    from_read, from_write = os.pipe()
    for fd in (to_write, from_read):
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    return (to_read, to_write), (from_read, from_write)


def make_region(size: int) -> tuple[PayloadRegion | None, int | None]:
    """A worker's shared-memory region and the descriptor to give it (see shared/payload_region.py); (None, None)
    where the kernel has no sealable memfd: payloads then all take the pipe."""
    try:
        return PayloadRegion.create(size)
    except (OSError, AttributeError):
        return None, None


def launch(config: Config, environ: Mapping[str, str], template_control_fd: int | None = None,
           cpu_handoff: CpuHandoff | None = None) -> Launched:
    """Start a fresh interpreter (no fork of this threaded process) in its own session, sharing only pipes
    (and, for the fork template, the control socket ``template_control_fd``). With ``cpu_handoff``, the
    worker waits on the supervisor's CPU and works on all of them."""
    (to_read, to_write), (from_read, from_write) = make_pipes()
    region, region_fd = make_region(config.max_frame_payload_bytes)
    command = [
        sys.executable, "-P", "-u", "-m", "lambda_supervisor.worker",
        "--in-fd", str(to_read), "--out-fd", str(from_write), "--parent-pid", str(os.getpid()),
    ]
    if cpu_handoff is not None:
        command += ["--cpu-handoff", cpu_handoff.to_argument()]
    shared_fds: tuple[int, ...] = (to_read, from_write)
    if region_fd is not None:
        command += ["--region-fd", str(region_fd)]
        shared_fds += (region_fd,)
    if template_control_fd is not None:
        command += ["--template-control-fd", str(template_control_fd)]
        shared_fds += (template_control_fd,)
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            env=worker_environment(config, environ),
            cwd=config.task_root,
            pass_fds=shared_fds,
            close_fds=True,
            start_new_session=True,
        )
    finally:
        for fd in (to_read, from_write) if region_fd is None else (to_read, from_write, region_fd):
            os.close(fd)
    return Launched(process, to_write, from_read, started, region)
