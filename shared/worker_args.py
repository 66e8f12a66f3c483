"""The worker's command line: what the supervisor passes when it starts a worker, written and read only here (as
protocol.py does for the pipe's frames and worker_env.py for the environment).

``python -P -u -c "from lambda_supervisor.worker.start import start; start()" --in-fd N --out-fd M --parent-pid P
[--cpu-handoff HOME:CPUS] [--template-control-fd F] [--region-fd R] [--hold-fd H]``. Parsed by hand, not with
argparse, and run with ``-c``, not ``-m lambda_supervisor.worker`` (runpy): the worker's start pays for every
import.
"""

from __future__ import annotations

from .cpu_handoff import CpuHandoff

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NamedTuple
else:
    from .named_tuple import NamedTuple

#: What follows the interpreter on a worker's command line, before :meth:`WorkerArgs.to_argv`'s options. ``-P``
#: keeps the working directory off ``sys.path`` (the worker puts the task root first itself); ``-u`` makes what the
#: user's code prints reach the log at once.
WORKER_COMMAND = ("-P", "-u", "-c", "from lambda_supervisor.worker.start import start; start()")

IN_FD = "--in-fd"
OUT_FD = "--out-fd"
PARENT_PID = "--parent-pid"
#: Run as the fork template, taking fork requests on this socket.
TEMPLATE_CONTROL_FD = "--template-control-fd"
#: ``HOME:CPUS``: wait on CPU HOME (the supervisor's), work on CPUS (shared/cpu_handoff.py).
CPU_HANDOFF = "--cpu-handoff"
#: The worker's shared-memory region for large payloads (shared/payload_region.py).
REGION_FD = "--region-fd"
#: Wait for a byte on this pipe before the user's init, exit at its end of file (supervisor/early_worker.py).
HOLD_FD = "--hold-fd"

REQUIRED = (IN_FD, OUT_FD, PARENT_PID)
OPTIONAL = (TEMPLATE_CONTROL_FD, CPU_HANDOFF, REGION_FD, HOLD_FD)


class WorkerArgsError(ValueError):
    """A worker command line that is not one the supervisor writes."""


class WorkerArgs(NamedTuple):
    """The worker's pipes (its end of each), the supervisor's pid, and the optional fork-template socket, CPU
    hand-off plan, shared-memory region and hold pipe (the first worker's, started by early_worker.py)."""

    in_fd: int
    out_fd: int
    parent_pid: int
    template_control_fd: int | None = None
    cpu_handoff: CpuHandoff | None = None
    region_fd: int | None = None
    hold_fd: int | None = None

    @property
    def inherited_fds(self) -> tuple[int, ...]:
        """The descriptors the worker must inherit (``pass_fds``)."""
        optional = (self.template_control_fd, self.region_fd)
        return (self.in_fd, self.out_fd, *(fd for fd in optional if fd is not None))

    def to_argv(self) -> list[str]:
        argv = [IN_FD, str(self.in_fd), OUT_FD, str(self.out_fd), PARENT_PID, str(self.parent_pid)]
        if self.cpu_handoff is not None:
            argv += [CPU_HANDOFF, self.cpu_handoff.to_argument()]
        if self.template_control_fd is not None:
            argv += [TEMPLATE_CONTROL_FD, str(self.template_control_fd)]
        if self.region_fd is not None:
            argv += [REGION_FD, str(self.region_fd)]
        if self.hold_fd is not None:
            argv += [HOLD_FD, str(self.hold_fd)]
        return argv

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> WorkerArgs:
        """Parse what :meth:`to_argv` wrote: each option once, with its value. Raises WorkerArgsError."""
        values = _option_values(argv)
        missing = [option for option in REQUIRED if option not in values]
        if missing:
            raise WorkerArgsError(f"missing {', '.join(missing)}")
        control = values.get(TEMPLATE_CONTROL_FD)
        handoff = values.get(CPU_HANDOFF)
        region = values.get(REGION_FD)
        hold = values.get(HOLD_FD)
        try:
            cpu_handoff = None if handoff is None else CpuHandoff.from_argument(handoff)
        except ValueError as error:
            raise WorkerArgsError(f"{CPU_HANDOFF} {handoff!r}: {error}") from None
        return cls(
            in_fd=_number(values, IN_FD, 0),
            out_fd=_number(values, OUT_FD, 0),
            parent_pid=_number(values, PARENT_PID, 1),
            template_control_fd=None if control is None else _number(values, TEMPLATE_CONTROL_FD, 0),
            cpu_handoff=cpu_handoff,
            region_fd=None if region is None else _number(values, REGION_FD, 0),
            hold_fd=None if hold is None else _number(values, HOLD_FD, 0),
        )


def _option_values(argv: Sequence[str]) -> dict[str, str]:
    if len(argv) % 2:
        raise WorkerArgsError(f"expected option/value pairs, got {len(argv)} words")
    values: dict[str, str] = {}
    for option, value in zip(argv[::2], argv[1::2], strict=True):
        if option not in REQUIRED and option not in OPTIONAL:
            raise WorkerArgsError(f"unknown option {option!r}")
        if option in values:
            raise WorkerArgsError(f"{option} given twice")
        values[option] = value
    return values


def _number(values: dict[str, str], option: str, minimum: int) -> int:
    text = values[option]
    if not text.isascii() or not text.isdigit() or int(text) < minimum:
        raise WorkerArgsError(f"{option} must be an integer of at least {minimum}, not {text!r}")
    return int(text)
