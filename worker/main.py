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

from lambda_supervisor.shared.cpu_handoff import CpuHandoff
from lambda_supervisor.shared.errors import ErrorType, error_object, exception_error_object
from lambda_supervisor.shared.prctl import set_child_subreaper
from lambda_supervisor.shared.printable import log_safe
from lambda_supervisor.shared.protocol import Frame, FrameDecoder, MessageType, encode_frame
from lambda_supervisor.shared.rlimits import RLimit, apply_rlimits, arm_cpu_limit, parse_rlimits

from . import soft_timeout
from .context import FunctionInfo
from .cpu_affinity import MainThreadCpu
from .handler_loader import InitFailure, load_handler, put_task_root_first
from .invocation import Invoker, bounded_error_payload, error_frame
from .output import HandlerOutput
from .output import install as install_output
from .settings import HTTP, TAG_OUTPUT, read_decode_base64, read_switch, resolve_options

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
    """Blocking frame I/O on the two pipe ends this worker was given. While it waits for a frame or writes one, the
    main thread sits on the supervisor's CPU (``cpu``, when the supervisor shares one); it is released as soon as a
    frame arrives."""

    def __init__(self, in_fd: int, out_fd: int, cpu: MainThreadCpu | None = None) -> None:
        # Our pipe ends must not leak into programs the handler starts.
        os.set_inheritable(in_fd, False)
        os.set_inheritable(out_fd, False)
        self._in_fd = in_fd
        self._out_fd = out_fd
        self.cpu = cpu if cpu is not None else MainThreadCpu(None)
        self._decoder = FrameDecoder(max_payload_bytes=MAX_EVENT_BYTES)
        self._pending: deque[Frame] = deque()

    def close(self) -> None:
        os.close(self._in_fd)
        os.close(self._out_fd)

    def announce_ready(self) -> None:
        self.send(encode_frame({"type": MessageType.READY, "pid": os.getpid()}))

    def send(self, data: bytes) -> None:
        self.cpu.settle()  # the supervisor waits on its CPU: wake it there
        view = memoryview(data)
        while view:
            written = os.write(self._out_fd, view)
            view = view[written:]

    def receive(self) -> Frame | None:
        """The next frame, or None once the supervisor has closed its end."""
        while not self._pending:
            self.cpu.settle()
            frames = self._decoder.read_from(self._in_fd)
            if frames is None:
                return None
            self._pending.extend(frames)
        self.cpu.release()  # what comes next is the handler's work
        return self._pending.popleft()


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lambda_supervisor.worker")
    parser.add_argument("--in-fd", type=int, required=True)
    parser.add_argument("--out-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--template-control-fd", type=int,
                        help="run as the fork template, taking fork requests on this socket")
    parser.add_argument("--cpu-handoff", type=CpuHandoff.from_argument,
                        help="HOME:CPUS: wait on CPU HOME (the supervisor's), work on CPUS")
    return parser.parse_args(argv)


class UserFunction:
    """The user's handler after init, ready to invoke; shared by workers and the fork template."""

    def __init__(self, invoker: Invoker, output: HandlerOutput, limits: tuple[RLimit, ...] = ()) -> None:
        self.invoker = invoker
        self.output = output
        self.limits = limits

    @classmethod
    def initialise(cls, output: HandlerOutput, limits: tuple[RLimit, ...] = ()) -> UserFunction:
        """Run the user's init (import the handler's module); raises InitFailure. ``output`` is where the
        handler's prints and logs go, tagged with the request in progress."""
        environ = dict(os.environ)
        put_task_root_first(environ.get("LAMBDA_TASK_ROOT") or os.getcwd())
        max_response_bytes = int(environ.get("LAMBDA_SUPERVISOR_MAX_RESPONSE_BYTES") or DEFAULT_MAX_RESPONSE_BYTES)
        decode_base64 = read_decode_base64(environ)  # a bad setting is reported before any user code runs
        http = read_switch(environ, HTTP)
        handler = load_handler(environ.get("_HANDLER", ""))
        options = resolve_options(environ, decode_base64, handler, http)
        invoker = Invoker(handler, FunctionInfo.from_environ(environ), max_response_bytes, options,
                          error_log=output.log_error)
        return cls(invoker, output, limits)

    def invoke(self, frame: Frame) -> bytes:
        """One invocation, under its soft timeout if the supervisor set one; always one reply frame."""
        reply: bytes | None = None
        request_id = str(frame.header["request_id"])
        self.output.request_id = log_safe(request_id)  # in what the handler logs: no control character
        tenant_id = frame.header.get("tenant_id")
        self.output.tenant_id = log_safe(str(tenant_id)) if tenant_id is not None else None
        arm_cpu_limit(self.limits)
        try:
            armed = soft_timeout.arm(frame.header.get("soft_deadline_ms"))
            reply = self.invoker(frame.header, frame.payload)
            if armed:
                soft_timeout.disarm()
        except soft_timeout.SoftTimeoutError as error:  # fired outside the handler's own try (encoding its result)
            soft_timeout.disarm()
            if reply is None:
                reply = error_frame(request_id, exception_error_object(error))
        finally:
            self.output.request_id = self.output.tenant_id = None
        return reply


def serve(channel: Channel, function: UserFunction) -> int:
    """Announce readiness, then answer invoke frames until the supervisor closes the pipe.

    A handler that forks and whose child forgets ``os._exit`` returns into this loop in the child too: that child
    must neither reply nor take the next event, so it ends here, at once."""
    worker_pid = os.getpid()
    channel.announce_ready()
    while (frame := channel.receive()) is not None:
        if frame.type == MessageType.INVOKE:
            reply = function.invoke(frame)
            if os.getpid() != worker_pid:
                os._exit(0)
            channel.send(reply)
    return 0


def report_init_failure(channel: Channel, failure: InitFailure, output: HandlerOutput | None = None) -> int:
    """Log the init error as awslambdaric does (when given where), then send it to the supervisor."""
    if output is not None:
        output.log_error(failure.error)
    channel.send(encode_frame({"type": MessageType.INIT_ERROR}, bounded_error_payload(failure.error)))
    return 1


def main(argv: list[str] | None = None) -> int:
    arguments = _parse_arguments(argv)
    die_with_parent(arguments.parent_pid)
    # Before any user code: orphans of what the user's code starts are re-parented to this worker, not to the
    # supervisor, so the worker's process tree is exactly what it is answerable for (supervisor/process_tree.py).
    set_child_subreaper(True)
    cpu = MainThreadCpu(arguments.cpu_handoff)
    cpu.release()  # we inherited the supervisor's pinning: undo it before any user code runs
    channel = Channel(arguments.in_fd, arguments.out_fd, cpu)
    environ = dict(os.environ)
    try:
        tag_output = bool(read_switch(environ, TAG_OUTPUT))
    except InitFailure as failure:
        return report_init_failure(channel, failure)
    output = install_output(environ.get("AWS_LAMBDA_LOG_FORMAT", "Text"), environ.get("AWS_LAMBDA_LOG_LEVEL", ""),
                            tag_output=tag_output)
    try:  # before any user code runs, so that it runs under them (the fork template's workers inherit them)
        limits = parse_rlimits(environ.get("LAMBDA_SUPERVISOR_RLIMITS", ""))
        apply_rlimits(limits)
    except (OSError, ValueError) as error:
        problem = error_object(ErrorType.CONFIGURATION, f"LAMBDA_SUPERVISOR_RLIMITS could not be applied: {error}")
        channel.send(encode_frame({"type": MessageType.INIT_ERROR}, bounded_error_payload(problem)))
        return 1
    if arguments.template_control_fd is not None:
        from .template import run_template

        return run_template(channel, arguments.template_control_fd, arguments.parent_pid, output, limits)
    try:
        function = UserFunction.initialise(output, limits)
    except InitFailure as failure:
        return report_init_failure(channel, failure, output)
    return serve(channel, function)
