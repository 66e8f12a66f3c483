"""The worker's life: init the user's code once, then serve invoke frames until the supervisor closes the pipe.

Started by the supervisor as ``python -P -u -m lambda_supervisor.worker --in-fd N --out-fd M --parent-pid P``:
``-P`` keeps the working directory off ``sys.path`` (the task root is put first explicitly instead) and ``-u``
makes ``print`` reach the log at once, so that nothing a handler printed is lost if it crashes right after.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
from collections import deque
from pathlib import Path

from lambda_supervisor.shared.errors import ErrorType, error_object
from lambda_supervisor.shared.protocol import Frame, FrameDecoder, MessageType, encode_frame
from lambda_supervisor.shared.rlimits import apply_rlimits, arm_cpu_limit, parse_rlimits

from .context import FunctionInfo
from .handler_loader import InitFailure, load_handler, put_task_root_first
from .invocation import bounded_error_payload, run_invocation

#: Events come from the (trusted) supervisor; the bound only guards against a broken pipe stream.
MAX_EVENT_BYTES = 64 * 1024 * 1024
PR_SET_PDEATHSIG = 1
DEFAULT_MAX_RESPONSE_BYTES = 6 * 1024 * 1024


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL us if the supervisor dies, so a killed supervisor leaves no orphaned worker."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the EOF on our input pipe still ends us
        pass
    if os.getppid() != parent_pid:  # the supervisor died before the request above took effect
        os._exit(1)


class Channel:
    """Blocking frame I/O on the two pipe ends this worker was given."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        # Our pipe ends must not leak into programs the handler starts.
        os.set_inheritable(in_fd, False)
        os.set_inheritable(out_fd, False)
        self._in_fd = in_fd
        self._out_fd = out_fd
        self._decoder = FrameDecoder(max_payload_bytes=MAX_EVENT_BYTES)
        self._pending: deque[Frame] = deque()

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._out_fd, view)
            view = view[written:]

    def receive(self) -> Frame | None:
        """The next frame, or None once the supervisor has closed its end."""
        while not self._pending:
            chunk = os.read(self._in_fd, 1 << 20)
            if not chunk:
                return None
            self._pending.extend(self._decoder.feed(chunk))
        return self._pending.popleft()


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lambda_supervisor.worker")
    parser.add_argument("--in-fd", type=int, required=True)
    parser.add_argument("--out-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = _parse_arguments(argv)
    die_with_parent(arguments.parent_pid)
    channel = Channel(arguments.in_fd, arguments.out_fd)
    environ = dict(os.environ)
    try:  # before any user code runs, so that it runs under them
        limits = parse_rlimits(environ.get("LAMBDA_SUPERVISOR_RLIMITS", ""))
        apply_rlimits(limits)
    except (OSError, ValueError) as error:
        problem = error_object(ErrorType.CONFIGURATION, f"LAMBDA_SUPERVISOR_RLIMITS could not be applied: {error}")
        channel.send(encode_frame({"type": MessageType.INIT_ERROR}, bounded_error_payload(problem)))
        return 1
    put_task_root_first(Path(environ.get("LAMBDA_TASK_ROOT") or os.getcwd()))
    max_response_bytes = int(environ.get("LAMBDA_SUPERVISOR_MAX_RESPONSE_BYTES") or DEFAULT_MAX_RESPONSE_BYTES)
    function = FunctionInfo.from_environ(environ)
    try:
        handler = load_handler(environ.get("_HANDLER", ""))
    except InitFailure as failure:
        channel.send(encode_frame({"type": MessageType.INIT_ERROR}, bounded_error_payload(failure.error)))
        return 1
    channel.send(encode_frame({"type": MessageType.READY, "pid": os.getpid()}))
    while (frame := channel.receive()) is not None:
        if frame.type != MessageType.INVOKE:
            continue
        arm_cpu_limit(limits)
        channel.send(run_invocation(handler, function, frame.header, frame.payload,
                                    max_response_bytes=max_response_bytes))
    return 0
