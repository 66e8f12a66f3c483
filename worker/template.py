"""The fork template: run the user's init once, then fork ready-made workers on the supervisor's request.

This is the ``fork`` respawn strategy (gunicorn's ``preload_app``, applied to recovery): a replacement worker
costs a ``fork()``, not an interpreter start plus the user's imports. The template never runs a handler itself.

A worker is made by a double fork. The template forks an intermediate process, which forks the worker and exits
at once; the orphaned worker is then adopted by the supervisor (a child subreaper), so the supervisor can wait for
it, read its exit status and kill its process group exactly as for a worker it started itself. Like every worker,
the template is a child subreaper itself (the daemons its init started are its own), so it stops being one while
it forks a worker, or the worker would be re-parented to the template; the worker becomes one once adopted.

Caveats users must know (the README repeats them): anything the user's init opened (sockets, database
connections, files) is shared by every forked worker; threads started at import do not exist in the workers; and
a forked worker ends with ``os._exit``, so ``atexit`` handlers do not run.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback

from lambda_supervisor.shared.payload_region import PayloadRegion
from lambda_supervisor.shared.prctl import set_child_subreaper
from lambda_supervisor.shared.protocol import (
    MAX_FORK_MESSAGE_BYTES,
    ForkedMessage,
    ForkFailedMessage,
    ForkRequest,
    InvalidMessage,
)
from lambda_supervisor.shared.rlimits import RLimit

from .handler_loader import InitFailure
from .log_stream import connect_log_stream
from .output import HandlerOutput
from .serialisers import load_encoder
from .serving import Channel, UserFunction, die_with_parent, report_init_failure, serve

#: How long a new worker waits to be adopted by the supervisor after the intermediate exits (it takes microseconds).
ADOPTION_TIMEOUT_S = 5.0


def _exit_code(error: SystemExit) -> int:
    if error.code is None:
        return 0
    if isinstance(error.code, int):
        return error.code
    print(error.code, file=sys.stderr)
    return 1


def _become_worker(template: Channel, control: socket.socket, function: UserFunction, fds: list[int],
                   supervisor_pid: int) -> None:
    """In the grandchild: drop the template's descriptors (fork copies them all, close-on-exec or not), leave its
    session, wait for adoption, then serve. Never returns."""
    code = 1
    try:
        control.close()
        template.close()
        function.invoker.runner.after_fork()
        os.setsid()
        deadline = time.monotonic() + ADOPTION_TIMEOUT_S
        while os.getppid() != supervisor_pid:
            if time.monotonic() > deadline:
                os._exit(70)
            time.sleep(0.0002)
        die_with_parent(supervisor_pid)
        set_child_subreaper(True)  # not inherited through fork: this worker's orphans are its own
        connect_log_stream(os.environ)  # several slots: a log stream of its own
        region = PayloadRegion.attach(fds[2]) if len(fds) > 2 else None
        code = serve(Channel(fds[0], fds[1], template.cpu, region), function)
    except SystemExit as error:  # sys.exit() in a handler ends this worker with that status, as in a fresh one
        code = _exit_code(error)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _fork_worker(template: Channel, control: socket.socket, function: UserFunction, fds: list[int],
                 supervisor_pid: int) -> None:
    """Fork a worker that the supervisor adopts. While the intermediate lives, the template is no subreaper: the
    worker must be re-parented past it, to the supervisor (an orphan of the template's own tree re-parented in that
    instant goes to the supervisor too, and is killed as a leftover)."""
    set_child_subreaper(False)
    try:
        _fork_through_intermediate(template, control, function, fds, supervisor_pid)
    finally:
        set_child_subreaper(True)


def _fork_through_intermediate(template: Channel, control: socket.socket, function: UserFunction, fds: list[int],
                               supervisor_pid: int) -> None:
    intermediate = os.fork()
    if intermediate == 0:
        try:
            worker = os.fork()
            if worker == 0:
                _become_worker(template, control, function, fds, supervisor_pid)
            control.send(ForkedMessage(worker).encode())
        except BaseException as error:
            control.send(ForkFailedMessage(repr(error)).encode())
        finally:
            os._exit(0)
    os.waitpid(intermediate, 0)


def _is_fork_request(message: bytes) -> bool:
    try:
        ForkRequest.parse(message)
    except InvalidMessage:
        return False
    return True


def run_template(channel: Channel, control_fd: int, supervisor_pid: int, output: HandlerOutput,
                 limits: tuple[RLimit, ...] = ()) -> int:
    """Init once, report ready on ``channel`` as any worker does, then fork workers until the control socket
    closes. Each request is one SEQPACKET message carrying the new worker's two pipe ends, and its shared-memory
    region when it has one."""
    control = socket.socket(fileno=control_fd)
    control.set_inheritable(False)
    try:
        function = UserFunction.initialise(output, limits)
    except InitFailure as failure:
        return report_init_failure(channel, failure, output)
    load_encoder()  # once here, rather than in each forked worker at its first result that needs simplejson
    channel.announce_ready(own_fds=(control_fd,))
    while True:
        message, fds, _flags, _address = socket.recv_fds(control, MAX_FORK_MESSAGE_BYTES, 3)
        if not message:
            return 0
        try:
            if _is_fork_request(message) and len(fds) in (2, 3):
                _fork_worker(channel, control, function, fds, supervisor_pid)
        finally:
            for fd in fds:
                os.close(fd)
