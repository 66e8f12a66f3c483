"""Where workers come from: the respawn strategies ``fresh``, ``spare`` and ``fork``.

A fault should cost one request, not a cold start. The strategies trade memory for recovery time:

- ``fresh``: a new interpreter runs the user's init again. Nothing is shared and nothing kept in reserve; a
  replacement takes interpreter start-up plus the user's init.
- ``spare``: one standby worker is always initialised ahead of need. A replacement is a promotion (the standby's
  READY frame is already waiting in its pipe) and a new standby starts in the background, overlapping the next
  invocations. Costs the memory of a second initialised worker.
- ``fork``: a template process ran the user's init once and forks workers on request (copy-on-write), like
  gunicorn's ``preload_app``. A replacement costs a fork; but whatever the init opened is shared by all workers.

Every strategy hands the loop a worker that is ready, or raises WorkerInitFailed.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Mapping

import psutil

from lambda_supervisor.shared.cpu_handoff import CpuHandoff
from lambda_supervisor.shared.errors import ErrorType, error_object
from lambda_supervisor.shared.protocol import (
    MAX_FORK_MESSAGE_BYTES,
    ForkedMessage,
    ForkRequest,
    InvalidMessage,
    parse_fork_reply,
)

from .config import Config
from .events import emit
from .worker_process import WorkerInitFailed, WorkerProcess, WorkerWaitInterrupted

#: The pause before a lost standby is started again: doubled with each loss in a row, jittered, capped.
SPARE_RETRY_INITIAL_S = 0.2
SPARE_RETRY_MAX_S = 30.0


def _reason_it_died(worker: WorkerProcess) -> str:
    """What a dead standby said before it died: its init error, if it sent one."""
    worker.kill()  # reaps it, keeping what it left in its pipe
    error = worker.init_error()
    if error is None:
        return "no init error was sent"
    return f"{error['errorType']}: {error['errorMessage']}"


class WorkerFactory:
    """The ``fresh`` strategy, and the interface of all of them."""

    strategy = "fresh"

    def __init__(self, config: Config, environ: Mapping[str, str], cpu_handoff: CpuHandoff | None = None) -> None:
        self.config = config
        self.environ = environ
        self.cpu_handoff = cpu_handoff
        #: Readable once shutdown is requested (the supervisor's self-pipe): every wait for a starting worker ends.
        self.interrupt_fd: int | None = None

    def _spawn(self, template_control_fd: int | None = None) -> WorkerProcess:
        return WorkerProcess.spawn(self.config, self.environ, template_control_fd, self.cpu_handoff)

    def _spawn_ready(self) -> WorkerProcess:
        worker = self._spawn()
        worker.wait_ready(self.config.init_timeout_s, self.interrupt_fd)
        return worker

    def start(self) -> WorkerProcess:
        """The first worker, at cold start (its init failure is the function's init failure)."""
        return self._spawn_ready()

    def replace(self) -> WorkerProcess:
        """A ready worker to take over from one that died or was retired."""
        return self._spawn_ready()

    def maintain(self) -> None:
        """Between invocations: repair whatever the strategy keeps in reserve."""

    def reserves(self) -> list[WorkerProcess]:
        """The workers kept besides the active one (a standby, the template)."""
        return []

    def close(self, grace_s: float) -> None:
        """Stop whatever the strategy keeps in reserve."""


class SpareFactory(WorkerFactory):
    """Keeps one standby initialised. A standby that dies (its init failing, say) is reported with its init error
    and started again after a jittered exponential pause, so a broken init is not re-run between every two
    invocations."""

    strategy = "spare"

    def __init__(self, config: Config, environ: Mapping[str, str], cpu_handoff: CpuHandoff | None = None) -> None:
        super().__init__(config, environ, cpu_handoff)
        self._spare: WorkerProcess | None = None
        self._spare_failures = 0  # standbys lost in a row, since one was last promoted
        self._next_spare_at = 0.0  # time.monotonic() before which no new standby is started

    def start(self) -> WorkerProcess:
        active = self._spawn()
        self._spare = self._spawn()  # initialises alongside the first one
        try:
            active.wait_ready(self.config.init_timeout_s, self.interrupt_fd)
        except WorkerInitFailed:
            self.close(0)
            raise
        return active

    def replace(self) -> WorkerProcess:
        promoted, self._spare = self._spare, None
        if promoted is None or promoted.has_exited():
            if promoted is not None:
                self._standby_lost(promoted)
            promoted = self._spawn()
        interrupted = False
        try:
            promoted.wait_ready(self.config.init_timeout_s, self.interrupt_fd)  # instant if the standby is ready
            self._spare_failures = 0
        except WorkerWaitInterrupted:
            interrupted = True  # shutting down: no new standby
            raise
        finally:
            if not interrupted:
                self._spare = self._spawn()
        return promoted

    def maintain(self) -> None:
        if self._spare is not None and self._spare.has_exited():
            self._standby_lost(self._spare)
            self._spare = None
        if self._spare is None and time.monotonic() >= self._next_spare_at:
            self._spare = self._spawn()

    def _standby_lost(self, standby: WorkerProcess) -> None:
        """Log a dead standby with the reason it gave (its init error), and pause before starting the next."""
        self._spare_failures += 1
        ceiling = min(SPARE_RETRY_INITIAL_S * 2 ** (self._spare_failures - 1), SPARE_RETRY_MAX_S)
        pause = ceiling / 2 + random.uniform(0, ceiling / 2)
        self._next_spare_at = time.monotonic() + pause
        reason = _reason_it_died(standby)
        emit("spare_lost", "standby worker died; starting another after a pause", level="WARNING", pid=standby.pid,
             exit=standby.exit_description or "unknown", error=reason, attempt=self._spare_failures,
             retry_in_ms=pause * 1000)

    def reserves(self) -> list[WorkerProcess]:
        return [self._spare] if self._spare is not None else []

    def close(self, grace_s: float) -> None:
        if self._spare is not None:
            self._spare.terminate(grace_s)
            self._spare = None


class TemplateGone(Exception):
    """The fork template exited or broke its protocol."""


class ForkFactory(WorkerFactory):
    strategy = "fork"

    def __init__(self, config: Config, environ: Mapping[str, str], cpu_handoff: CpuHandoff | None = None) -> None:
        super().__init__(config, environ, cpu_handoff)
        self._template: WorkerProcess | None = None
        self._control: socket.socket | None = None

    def _start_template(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            template = self._spawn(template_control_fd=theirs.fileno())
        finally:
            theirs.close()
        self._template, self._control = template, ours
        try:
            template.wait_ready(self.config.init_timeout_s, self.interrupt_fd)
        except WorkerInitFailed:
            self._drop_template()
            raise

    def _drop_template(self, grace_s: float = 0.0) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._template is not None:
            self._template.terminate(grace_s)
            self._template = None

    def _fork(self) -> WorkerProcess:
        assert self._control is not None
        (to_read, to_write), (from_read, from_write) = WorkerProcess.make_pipes()
        try:
            try:
                socket.send_fds(self._control, [ForkRequest().encode()], [to_read, from_write])
                self._control.settimeout(self.config.init_timeout_s)
                reply = self._control.recv(MAX_FORK_MESSAGE_BYTES)
            except OSError as error:
                raise TemplateGone(f"fork request failed: {error}") from None
        finally:
            os.close(to_read)
            os.close(from_write)
        pid = self._forked_pid(reply)
        if pid is None:
            os.close(to_write)
            os.close(from_read)
            raise TemplateGone(f"unusable reply from the template: {reply[:200]!r}")
        worker = WorkerProcess.adopt(pid, to_write, from_read, self.config)
        worker.wait_ready(self.config.init_timeout_s, self.interrupt_fd)
        if psutil.Process(pid).ppid() != os.getpid():  # READY is only sent once adopted; anything else is a lie
            worker.kill()
            raise WorkerInitFailed(error_object(ErrorType.INVALID_WORKER_MESSAGE,
                                                f"forked worker {pid} is not a child of the supervisor"))
        return worker

    @staticmethod
    def _forked_pid(reply: bytes) -> int | None:
        try:
            message = parse_fork_reply(reply)
        except InvalidMessage:
            return None
        return message.pid if isinstance(message, ForkedMessage) else None

    def start(self) -> WorkerProcess:
        self._start_template()
        return self.replace()

    def replace(self) -> WorkerProcess:
        if self._template is None or self._template.has_exited():
            if self._template is not None:
                emit("template_lost", "fork template died; starting another", level="WARNING",
                     pid=self._template.pid)
            self._drop_template()
            self._start_template()
        try:
            return self._fork()
        except TemplateGone as error:
            emit("template_broken", "fork template failed; starting another", level="WARNING", error=str(error))
        self._drop_template()
        self._start_template()
        try:
            return self._fork()
        except TemplateGone as error:
            self._drop_template()
            raise WorkerInitFailed(error_object(ErrorType.EXIT, f"the fork template failed twice: {error}")) from None

    def maintain(self) -> None:
        if self._template is not None and self._template.has_exited():
            self._drop_template()  # restarted on the next replace(), when it is needed

    def reserves(self) -> list[WorkerProcess]:
        return [self._template] if self._template is not None else []

    def close(self, grace_s: float) -> None:
        self._drop_template(grace_s)


def make_factory(config: Config, environ: Mapping[str, str], cpu_handoff: CpuHandoff | None = None
                 ) -> WorkerFactory:
    factories: dict[str, type[WorkerFactory]] = {"fresh": WorkerFactory, "spare": SpareFactory, "fork": ForkFactory}
    return factories[config.respawn](config, environ, cpu_handoff)
