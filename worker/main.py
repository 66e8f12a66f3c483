"""The worker's entry point: set the process up, then init the user's code and serve (serving.py), or run as the
fork template (template.py).

Started by the supervisor with shared/worker_args.py's ``WORKER_COMMAND`` (through worker/start.py): ``-P`` keeps
the working directory off ``sys.path`` (the task root is put first explicitly instead) and ``-u`` makes ``print``
reach the log at once, so that nothing a handler printed is lost if it crashes right after.
"""

from __future__ import annotations

import gc
import os

from lambda_supervisor.shared import worker_env
from lambda_supervisor.shared.errors import ErrorType, error_object
from lambda_supervisor.shared.payload_region import PayloadRegion
from lambda_supervisor.shared.prctl import set_child_subreaper
from lambda_supervisor.shared.rlimits import apply_rlimits, parse_rlimits
from lambda_supervisor.shared.worker_args import WorkerArgs

from .cpu_affinity import MainThreadCpu
from .handler_loader import InitFailure
from .on_import import pin
from .output import install as install_output
from .serving import Channel, UserFunction, die_with_parent, report_init_failure, serve
from .settings import TAG_OUTPUT, read_switch

#: Modules the worker used to import before the user's code and now imports only when needed (logging and
#: traceback on first use, the HTTP helpers', error reporting's, simplejson for the first result that is not plain
#: data), with theirs: still found where they are before the task root goes first on sys.path, so that a user's
#: module of the same name does not replace them (on_import.py).
IMPORTED_WHEN_NEEDED = (
    "base64", "binascii", "contextlib", "ctypes", "http", "linecache", "logging", "math", "resource", "select",
    "signal", "string", "struct", "textwrap", "threading", "token", "tokenize", "traceback", "typing", "weakref",
    "_weakrefset", "simplejson", "decimal", "_decimal", "numbers",
)


def _released(hold_fd: int) -> bool:
    """Wait until the supervisor lets this worker (started before its configuration was loaded) run the user's
    init: a byte, or end of file when it will not."""
    try:
        return os.read(hold_fd, 1) != b""
    finally:
        os.close(hold_fd)


def _collector_on() -> None:
    """Turn the garbage collector back on (start.py turned it off while our modules loaded), so that the user's code
    runs under it as under awslambdaric. What was allocated so far goes straight to the oldest generation (freeze,
    then unfreeze): the first collections do not sweep all of our modules' objects."""
    gc.freeze()
    gc.unfreeze()
    gc.enable()


def main(arguments: WorkerArgs, cpu: MainThreadCpu) -> int:
    """Run the worker; ``cpu``: its main thread's CPUs, already spread over all of them (start.py)."""
    die_with_parent(arguments.parent_pid)
    # Before any user code: orphans of what the user's code starts are re-parented to this worker, not to the
    # supervisor, so the worker's process tree is exactly what it is answerable for (supervisor/process_tree.py).
    set_child_subreaper(True)
    region = PayloadRegion.attach(arguments.region_fd) if arguments.region_fd is not None else None
    channel = Channel(arguments.in_fd, arguments.out_fd, cpu, region)
    environ = dict(os.environ)
    try:
        tag_output = bool(read_switch(environ, TAG_OUTPUT))
    except InitFailure as failure:
        return report_init_failure(channel, failure)
    pin(*IMPORTED_WHEN_NEEDED)
    output = install_output(environ.get(worker_env.LOG_FORMAT, "Text"), environ.get(worker_env.LOG_LEVEL, ""),
                            tag_output=tag_output)
    try:  # before any user code runs, so that it runs under them (the fork template's workers inherit them)
        limits = parse_rlimits(environ.get(worker_env.RLIMITS, ""))
        apply_rlimits(limits)
    except (OSError, ValueError) as error:
        return report_init_failure(channel, InitFailure(error_object(
            ErrorType.CONFIGURATION, f"{worker_env.RLIMITS} could not be applied: {error}")))
    if arguments.hold_fd is not None and not _released(arguments.hold_fd):
        return 0  # started ahead of the supervisor's configuration, which turned out otherwise: no user code ran
    _collector_on()
    if arguments.template_control_fd is not None:
        from .template import run_template  # only the fork template needs it

        return run_template(channel, arguments.template_control_fd, arguments.parent_pid, output, limits)
    if environ.get(worker_env.LOG_SOCKET):  # several slots: this worker's output goes to a log stream of its own
        from .log_stream import connect_log_stream

        connect_log_stream(environ)
    try:
        function = UserFunction.initialise(output, limits)
    except InitFailure as failure:
        return report_init_failure(channel, failure, output)
    return serve(channel, function)
