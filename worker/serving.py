"""The worker's serving loop: frame I/O with the supervisor, the user's function after init, one reply per event.

Shared by a worker started on its own (main.py) and the workers the fork template forks (template.py).
"""

from __future__ import annotations

import _signal as signal  # not signal.py: its enums cost every start (as in the supervisor)
import os
from collections import deque

from lambda_supervisor.shared import libc, worker_env
from lambda_supervisor.shared.errors import exception_error_object
from lambda_supervisor.shared.payload_region import PayloadRegion
from lambda_supervisor.shared.printable import log_safe
from lambda_supervisor.shared.protocol import (
    Frame,
    FrameDecoder,
    InitErrorMessage,
    InvokeMessage,
    MessageType,
    ReadyMessage,
)
from lambda_supervisor.shared.rlimits import RLimit, arm_cpu_limit

from . import soft_timeout
from .context import FunctionInfo
from .cpu_affinity import MainThreadCpu
from .handler_loader import InitFailure, load_handler, put_task_root_first
from .init_leftovers import init_leftovers
from .invocation import Invoker, bounded_error_payload, error_frame
from .output import HandlerOutput
from .settings import HTTP, read_decode_base64, read_switch, resolve_options

#: Events come from the (trusted) supervisor; the bound only guards against a broken pipe stream.
MAX_EVENT_BYTES = 64 * 1024 * 1024
PR_SET_PDEATHSIG = 1
DEFAULT_MAX_RESPONSE_BYTES = 6 * 1024 * 1024


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL us if the supervisor dies, so a killed supervisor leaves no orphaned worker."""
    try:  # noqa: SIM105 - not contextlib: one import less at every start
        libc.call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:  # not Linux: the EOF on our input pipe still ends us
        pass
    if os.getppid() != parent_pid:  # the supervisor died before the request above took effect
        os._exit(1)


class Channel:
    """Blocking frame I/O on the two pipe ends this worker was given. While it waits for a frame or writes one, the
    main thread sits on the supervisor's CPU (``cpu``, when the supervisor shares one); it is released as soon as a
    frame arrives. ``region``: the shared-memory region large payloads cross, when the supervisor gave one."""

    def __init__(self, in_fd: int, out_fd: int, cpu: MainThreadCpu | None = None,
                 region: PayloadRegion | None = None) -> None:
        # Our pipe ends must not leak into programs the handler starts.
        os.set_inheritable(in_fd, False)
        os.set_inheritable(out_fd, False)
        self._in_fd = in_fd
        self._out_fd = out_fd
        self.region = region
        self.cpu = cpu if cpu is not None else MainThreadCpu(None)
        self._decoder = FrameDecoder(max_payload_bytes=MAX_EVENT_BYTES)
        self._pending: deque[Frame] = deque()

    def close(self) -> None:
        os.close(self._in_fd)
        os.close(self._out_fd)
        if self.region is not None:
            self.region.close()
            self.region = None

    def event_body(self, message: InvokeMessage, frame: Frame) -> bytes | memoryview:
        """The event's body: the frame's payload, or a view of the region when the frame says it is there (read
        before the result is put there)."""
        if message.region_bytes is None:
            return frame.payload
        if self.region is None:
            raise ValueError("the event is in a shared-memory region this worker was not given")
        return self.region.view(message.region_bytes)

    def announce_ready(self, own_fds: tuple[int, ...] = ()) -> None:
        """The user's init is done: say so, with what it left that a fork would share or lose (``own_fds``: the
        worker's descriptors besides this channel's)."""
        self.send(ReadyMessage(os.getpid(), init_leftovers((self._in_fd, self._out_fd, *own_fds))).encode())

    def send(self, data: bytes, home_cpu: int | None = None) -> None:
        self.cpu.settle(home_cpu)  # the supervisor waits on its CPU: wake it there
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
        put_task_root_first(environ.get(worker_env.TASK_ROOT) or os.getcwd())
        max_response_bytes = int(environ.get(worker_env.MAX_RESPONSE_BYTES) or DEFAULT_MAX_RESPONSE_BYTES)
        decode_base64 = read_decode_base64(environ)  # a bad setting is reported before any user code runs
        http = read_switch(environ, HTTP)
        handler = load_handler(environ.get(worker_env.HANDLER, ""))
        options = resolve_options(environ, decode_base64, handler, http)
        invoker = Invoker(handler, FunctionInfo.from_environ(environ), max_response_bytes, options,
                          error_log=output.log_error)
        return cls(invoker, output, limits)

    def invoke(self, message: InvokeMessage, body: bytes | memoryview) -> bytes:
        """One invocation, under its soft timeout if the supervisor set one; always one reply frame."""
        reply: bytes | None = None
        request_id = message.request_id
        self.output.request_id = log_safe(request_id)  # in what the handler logs: no control character
        tenant_id = message.tenant_id
        self.output.tenant_id = log_safe(tenant_id) if tenant_id is not None else None
        arm_cpu_limit(self.limits)
        try:
            armed = soft_timeout.arm(message.soft_deadline_ms)
            reply = self.invoker(message, body)
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
    function.invoker.region = channel.region  # large results go back through it
    channel.announce_ready()
    while (frame := channel.receive()) is not None:
        if frame.type == MessageType.INVOKE:
            message = InvokeMessage.parse(frame)
            reply = function.invoke(message, channel.event_body(message, frame))
            if os.getpid() != worker_pid:
                os._exit(0)
            channel.send(reply, message.home_cpu)
    return 0


def report_init_failure(channel: Channel, failure: InitFailure, output: HandlerOutput | None = None) -> int:
    """Log the init error as awslambdaric does (when given where), then send it to the supervisor."""
    if output is not None:
        output.log_error(failure.error)
    channel.send(InitErrorMessage().encode(bounded_error_payload(failure.error)))
    return 1
