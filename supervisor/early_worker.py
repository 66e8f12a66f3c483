"""The first worker, started from the bootstrap's very first lines, before the supervisor imports the rest of itself.

The worker is launched before the configuration is even parsed (that parse and the rest of the supervisor's imports
then overlap the worker's start). When the bootstrap's interpreter was started with the worker's own flags
(``python -P -u -m``), the first worker is this interpreter forked, without exec: one interpreter start less on the
way to the first response and in the CPU it costs (the child erases what it must not keep: worker/forked_start.py).
Otherwise it is fork+exec'd, as every later worker is. Only ``os``, ``sys``, ``fcntl`` and the worker's command
line (shared/worker_args.py) are needed before the fork: the worker's environment (and the size of its
shared-memory region) is worked out from the raw variables and their defaults, and the worker is *held* before it
imports the user's code, until the supervisor has loaded its configuration and checked that the worker got exactly
what :func:`.worker_launch.launch` would have given it. Otherwise (a value to normalise, a configuration error) the
held worker is stopped before any user code ran, and the supervisor starts the first worker the ordinary way.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Mapping  # not typing's TYPE_CHECKING: importing typing costs more than the rest here

from lambda_supervisor.shared import worker_env
from lambda_supervisor.shared.cpu_handoff import CpuHandoff
from lambda_supervisor.shared.worker_args import WORKER_COMMAND, WorkerArgs

#: Used where a variable is unset or empty: the defaults of supervisor/config.py (a test keeps them equal).
DEFAULTS = {
    worker_env.TASK_ROOT: ".",
    worker_env.FUNCTION_NAME: "function",
    worker_env.FUNCTION_VERSION: "$LATEST",
    worker_env.FUNCTION_MEMORY_SIZE: "3008",
    worker_env.LOG_GROUP_NAME: "",
    worker_env.LOG_STREAM_NAME: "",
    worker_env.MAX_RESPONSE_BYTES: str(worker_env.LAMBDA_RESPONSE_LIMIT_BYTES),
    worker_env.LOG_FORMAT: "Text",
    worker_env.LOG_LEVEL: "",
    worker_env.RLIMITS: "",
}
RESPAWN = "LAMBDA_SUPERVISOR_RESPAWN"
#: Several slots start their workers otherwise (config.py: the first of these set wins, else one slot).
CONCURRENCY = ("LAMBDA_SUPERVISOR_CONCURRENCY", "AWS_LAMBDA_MAX_CONCURRENCY")
SHARE_CPU = "LAMBDA_SUPERVISOR_SHARE_CPU"
#: Modules of ours that the supervisor and every worker both import (with json, re and enum). Imported before a
#: worker is forked in place, they are imported once instead of twice: ~5 ms less CPU at each cold start, which a
#: quarter of a CPU feels (README). Each is one the worker imports too (test_cold_start.py), so that a forked worker
#: holds no module an exec'd one would not (test_forked_worker.py compares the two).
SHARED_WITH_THE_WORKER = (
    "lambda_supervisor.shared.protocol", "lambda_supervisor.shared.payload_region", "lambda_supervisor.shared.prctl",
    "lambda_supervisor.shared.printable", "lambda_supervisor.shared.rlimits", "lambda_supervisor.shared.worker_args",
)
F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20
#: A region's size can neither shrink (a worker could make the supervisor's reads fault) nor grow, nor be unsealed.
REGION_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL


def make_pipes() -> tuple[tuple[int, int], tuple[int, int]]:
    """(to_read, to_write), (from_read, from_write), with large buffers so a 1 MiB event is one write."""
    to_read, to_write = os.pipe()
    from_read, from_write = os.pipe()
    for fd in (to_write, from_read):
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    return (to_read, to_write), (from_read, from_write)


def make_region_fd(size: int) -> int | None:
    """A worker's shared-memory region (shared/payload_region.py maps it): a memfd of ``size`` bytes, sealed
    (REGION_SEALS) before any worker has it. None where the kernel has no sealable memfd: payloads then all take the
    pipe."""
    try:
        fd = os.memfd_create("lambda-supervisor-payload", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except (OSError, AttributeError):
        return None
    try:
        os.ftruncate(fd, size)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, REGION_SEALS)
    except OSError:
        os.close(fd)
        return None
    return fd


def region_size(environment: Mapping[str, str]) -> int | None:
    """The size config.max_frame_payload_bytes gives a worker's region, from the raw response limit; None for a
    value only the configuration can read (it then differs from the configured one, and the claim discards the
    worker)."""
    text = environment[worker_env.MAX_RESPONSE_BYTES]
    if not text.isascii() or not text.isdigit():
        return None
    return worker_env.frame_payload_limit(int(text))


def worker_command(in_fd: int, out_fd: int, cpu_handoff: CpuHandoff | None, region_fd: int | None,
                   hold_fd: int) -> list[str]:
    """The held first worker's command line: worker_launch.py's, with the hold pipe."""
    arguments = WorkerArgs(in_fd=in_fd, out_fd=out_fd, parent_pid=os.getpid(), cpu_handoff=cpu_handoff,
                           region_fd=region_fd, hold_fd=hold_fd)
    return [sys.executable, *WORKER_COMMAND, *arguments.to_argv()]


class EarlyWorker:
    """A worker started before the configuration was loaded, held before the user's code; see :func:`start`.
    ``region_fd``: its shared-memory region (None without one), for the supervisor to map once it is claimed."""

    def __init__(self, pid: int, to_write: int, from_read: int, hold_write: int, region_fd: int | None,
                 environment: dict[str, str], cpu_handoff: CpuHandoff | None, started_monotonic: float) -> None:
        self.pid = pid
        self.to_write = to_write
        self.from_read = from_read
        self.region_fd = region_fd
        self.environment = environment
        self.cpu_handoff = cpu_handoff
        self.started_monotonic = started_monotonic
        self._hold_write = hold_write

    def release(self) -> bool:
        """Let it import the user's code; False if it is gone (it died while held: no user code ran)."""
        try:
            os.write(self._hold_write, b"g")
        except BrokenPipeError:
            return False
        os.close(self._hold_write)
        return True

    def discard(self) -> None:
        """Stop it (it has run no user code) and reap it; closes the supervisor's ends of its pipes."""
        os.close(self._hold_write)  # a held worker that reads end-of-file exits by itself
        with contextlib.suppress(OSError):
            os.killpg(self.pid, 9)
        os.waitpid(self.pid, 0)
        os.close(self.to_write)
        os.close(self.from_read)
        if self.region_fd is not None:
            os.close(self.region_fd)


_started: EarlyWorker | None = None


def _value(environ: Mapping[str, str], defaults: Mapping[str, str], variable: str) -> str | None:
    return environ.get(variable) or defaults.get(variable) or DEFAULTS.get(variable)


def environment_updates(environ: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, str] | None:
    """The worker's settings as the configuration will resolve them, if that can be told without parsing any value
    (the claim checks them); None when there is no handler. Reads no withheld variable's value."""
    handler = _value(environ, defaults, worker_env.HANDLER)
    if handler is None or not handler.strip():
        return None
    updates = {variable: _value(environ, defaults, variable) or "" for variable in DEFAULTS}
    updates[worker_env.HANDLER] = handler.strip()
    updates[worker_env.TASK_ROOT] = os.path.realpath(updates[worker_env.TASK_ROOT])
    return updates


def withheld_variables(environ: Mapping[str, str]) -> tuple[str, ...]:
    """As worker_launch.py: the log stream socket of Managed Instances only goes to the workers of several slots."""
    return (worker_env.RUNTIME_API, worker_env.LOG_SOCKET) if _one_slot(environ) else (worker_env.RUNTIME_API,)


def expected_environment(environ: Mapping[str, str], updates: Mapping[str, str]) -> dict[str, str]:
    """The worker's whole environment: ``environ`` without the withheld variables, with ``updates``."""
    withheld = withheld_variables(environ)
    return {**{name: value for name, value in environ.items() if name not in withheld}, **updates}


def bootstrap_defaults(arguments: list[str]) -> dict[str, str] | None:
    """The defaults given by ``[run] [HANDLER] [--task-root DIR]``, or None for any other command line."""
    if arguments[:1] == ["run"]:
        arguments = arguments[1:]
    defaults: dict[str, str] = {}
    while arguments:
        if arguments[0] == "--task-root" and len(arguments) > 1:
            defaults[worker_env.TASK_ROOT], arguments = arguments[1], arguments[2:]
        elif not arguments[0].startswith("-") and worker_env.HANDLER not in defaults and "." in arguments[0]:
            defaults[worker_env.HANDLER], arguments = arguments[0], arguments[1:]
        else:
            return None
    return defaults


def _one_slot(environ: Mapping[str, str]) -> bool:
    """Whether the supervisor will run one slot (several start their workers together, or from a template)."""
    for variable in CONCURRENCY:
        if environ.get(variable):
            return environ[variable] == "1"
    return True


def start(arguments: list[str], environ: Mapping[str, str], startup_path: list[str] | None = None) -> bool:
    """For the bootstrap (``run``) with a strategy that starts with a plain worker (not ``auto`` with several
    slots: they start from a template): start the first worker, held, then become non-dumpable and a subreaper (the
    held worker runs no user code before the supervisor releases it). With ``startup_path`` (``sys.path`` as the
    interpreter set it), and when this interpreter was started as a worker's would be, the worker is this process
    forked without exec: True in that child, which must then call :func:`become_worker`."""
    global _started
    defaults = bootstrap_defaults(arguments)
    share_cpu = environ.get(SHARE_CPU) or "on"
    respawn = environ.get(RESPAWN) or "auto"
    if (defaults is None or respawn not in ("auto", "fresh", "spare") or share_cpu not in ("on", "off")
            or (respawn == "auto" and not _one_slot(environ))):
        return False
    # Nothing here reads a withheld variable's value (os.environ decodes a value only when it is read): a forked
    # worker then holds no decoded copy of the Runtime API address to erase.
    updates = environment_updates(environ, defaults)
    if updates is None or not os.path.isdir(updates[worker_env.TASK_ROOT]):
        return False
    cpu_handoff = CpuHandoff.plan() if share_cpu == "on" else None
    in_place = startup_path is not None and forks_in_place(environ)
    if in_place:
        for name in SHARED_WITH_THE_WORKER:
            __import__(name)
    _started = _spawn(environ, updates, cpu_handoff, startup_path if in_place else None)
    if _started is None:
        return True  # the child
    from lambda_supervisor.shared.prctl import set_child_subreaper, set_dumpable  # ctypes: after the fork

    set_dumpable(False)  # what run_bootstrap does first of all; before the worker is released
    set_child_subreaper(True)  # as the loop would before its first worker (it checks, and says so if it fails)
    return False


def forks_in_place(environ: Mapping[str, str]) -> bool:
    """Whether a fork of this interpreter is what an exec'd worker would be: started as ``python -P -u -m``, so that
    its flags, ``sys.path`` and standard streams are the worker's, with no relative or empty ``PYTHONPATH`` entry
    (resolved against another directory than the worker's)."""
    options = sys.orig_argv[1:sys.orig_argv.index("-m")] if "-m" in sys.orig_argv else None
    if options is None or sorted(options) not in (["-P", "-u"], ["-Pu"], ["-uP"]):
        return False
    entries = environ.get("PYTHONPATH") or ""
    return not entries or all(os.path.isabs(entry) for entry in entries.split(os.pathsep))


def _spawn(environ: Mapping[str, str], updates: dict[str, str], cpu_handoff: CpuHandoff | None,
           in_place_path: list[str] | None) -> EarlyWorker | None:
    """fork, then exec (no thread exists yet, and ``subprocess`` would be the largest import on this path), or with
    ``in_place_path`` go on as the worker in this interpreter: None in that child."""
    (to_read, to_write), (from_read, from_write) = make_pipes()
    hold_read, hold_write = os.pipe()
    size = region_size(updates)
    region_fd = make_region_fd(size) if size is not None else None
    command = worker_command(to_read, from_write, cpu_handoff, region_fd, hold_read)
    inherited = (to_read, from_write, hold_read) if region_fd is None else (to_read, from_write, hold_read, region_fd)
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        _prepare_child(updates[worker_env.TASK_ROOT], inherited)
        if in_place_path is not None:
            global _child
            _child = (command, in_place_path, withheld_variables(environ), updates)
            return None
        _exec(command, expected_environment(environ, updates))
    for fd in (to_read, from_write, hold_read):
        os.close(fd)
    environment = expected_environment(environ, updates)
    return EarlyWorker(pid, to_write, from_read, hold_write, region_fd, environment, cpu_handoff, started)


def _prepare_child(task_root: str, inherited: tuple[int, ...]) -> None:  # pragma: no cover (the child)
    """Its own session, the task root as its directory, /dev/null as stdin, only ``inherited`` beyond stdio."""
    try:
        os.setsid()
        os.chdir(task_root)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        _keep_only(inherited)
    except BaseException:
        os._exit(127)


def _exec(command: list[str], environment: dict[str, str]) -> None:  # pragma: no cover (the child)
    try:
        os.execve(sys.executable, command, environment)
    finally:
        os._exit(127)


_child: tuple[list[str], list[str], tuple[str, ...], dict[str, str]] | None = None


def become_worker() -> None:  # pragma: no cover (the child)
    """In the child :func:`start` forked in place: erase what the worker must not have, then run it as the
    exec'd worker's ``-c`` would (raises SystemExit with its status). If the erasing fails, exec the worker instead."""
    assert _child is not None
    command, path, withheld, updates = _child
    # This process is becoming the worker: the one place the supervisor's code calls into the worker's.
    from lambda_supervisor.worker.forked_start import CannotClean, erase_variables
    from lambda_supervisor.worker.forked_start import become_worker as run

    try:
        erase_variables(withheld)
    except CannotClean:
        _exec(command, expected_environment(os.environ, updates))
    for name, value in updates.items():
        if os.environ.get(name) != value:
            os.environ[name] = value
    run(command, path)


def _keep_only(shared: tuple[int, ...]) -> None:
    """In the child: close every descriptor above stderr but ``shared``, which the worker inherits."""
    low = 3
    for fd in sorted(shared):
        os.set_inheritable(fd, True)
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def take() -> EarlyWorker | None:
    """The worker :func:`start` started, if any (once)."""
    global _started
    early, _started = _started, None
    return early
