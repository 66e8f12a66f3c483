"""Where workers come from: the respawn strategies ``fresh``, ``spare`` and ``fork``.

A fault should cost one request, not a cold start. The strategies trade memory for recovery time:

- ``fresh``: a new interpreter runs the user's init again. Nothing is shared and nothing kept in reserve; a
  replacement takes interpreter start-up plus the user's init.
- ``spare``: one standby worker is always initialised ahead of need. A replacement is a promotion (the standby's
  READY frame is already waiting in its pipe) and a new standby starts in the background, overlapping the next
  invocations. Costs the memory of a second initialised worker.
- ``fork``: a template process ran the user's init once and forks workers on request (copy-on-write), like
  gunicorn's ``preload_app``. A replacement costs a fork; but whatever the init opened is shared by all workers.
- ``auto`` (the default): ``spare`` where a second initialised worker fits the function's memory, else ``fork``
  with its template started at the first fault (see strategy_choice.py).

Every strategy hands the loop a worker that is ready, or raises WorkerInitFailed.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Mapping

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
from .memory import rss_bytes
from .priority import lower_to_idle, restore_normal
from .process_tree import parent_pid
from .strategy_choice import choose_strategy
from .worker_launch import Launched, make_region
from .worker_process import WorkerInitFailed, WorkerProcess, WorkerWaitInterrupted

#: The pause before a lost standby is started again: doubled with each loss in a row, jittered, capped.
SPARE_RETRY_INITIAL_S = 0.2
SPARE_RETRY_MAX_S = 30.0
#: ``auto``: after this long without a fault, ``fork`` (standing in for ``spare`` during a run of faults) gives way.
CALM_AFTER_S = 60.0


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
        #: The first worker, when the bootstrap started it early (see cli.py); taken by the first plain spawn.
        self.prelaunched: Launched | None = None

    def _spawn(self, template_control_fd: int | None = None) -> WorkerProcess:
        if self.prelaunched is not None and template_control_fd is None:
            launched, self.prelaunched = self.prelaunched, None
            return WorkerProcess.take_over(launched, self.config)
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
    invocations. The first standby starts only after the first response is posted (``maintain``), and every
    standby runs at idle priority until it is promoted (see priority.py): a cold start runs the user's init
    once, and a standby's init never competes with an invocation."""

    strategy = "spare"

    def __init__(self, config: Config, environ: Mapping[str, str], cpu_handoff: CpuHandoff | None = None) -> None:
        super().__init__(config, environ, cpu_handoff)
        self._spare: WorkerProcess | None = None
        self._spare_failures = 0  # standbys lost in a row, since one was last promoted
        self._next_spare_at = 0.0  # time.monotonic() before which no new standby is started

    def replace(self) -> WorkerProcess:
        promoted, self._spare = self._spare, None
        if promoted is None or promoted.has_exited():
            if promoted is not None:
                self._standby_lost(promoted)
            promoted = self._spawn()
        else:
            self._promote(promoted)
        interrupted = False
        try:
            promoted.wait_ready(self.config.init_timeout_s, self.interrupt_fd)  # instant if the standby is ready
            self._spare_failures = 0
        except WorkerWaitInterrupted:
            interrupted = True  # shutting down: no new standby
            raise
        finally:
            if not interrupted:
                self._spare = self._spawn_standby()
        return promoted

    def maintain(self) -> None:
        if self._spare is not None and self._spare.has_exited():
            self._standby_lost(self._spare)
            self._spare = None
        if self._spare is None and time.monotonic() >= self._next_spare_at:
            self._spare = self._spawn_standby()

    def _spawn_standby(self) -> WorkerProcess:
        standby = self._spawn()
        priority = lower_to_idle(standby.pid)
        emit("spare_started", "standby worker started", level="DEBUG", pid=standby.pid,
             priority=priority or "normal")
        return standby

    @staticmethod
    def _promote(standby: WorkerProcess) -> None:
        """Normal priority again, for the standby and whatever its init started, before it serves (or finishes
        its init while a request waits)."""
        if not restore_normal(standby.pid):
            emit("priority_not_restored", "promoted standby could not be given normal priority back",
                 level="WARNING", pid=standby.pid)

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

    def standby_initialising(self) -> bool:
        """Whether the standby is still in its init: a replacement now would wait for it."""
        spare = self._spare
        return spare is not None and not spare.has_exited() and not spare.has_spoken()

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
        region, region_fd = make_region(self.config.max_frame_payload_bytes)
        theirs = [to_read, from_write] if region_fd is None else [to_read, from_write, region_fd]
        try:
            try:
                socket.send_fds(self._control, [ForkRequest().encode()], theirs)
                self._control.settimeout(self.config.init_timeout_s)
                reply = self._control.recv(MAX_FORK_MESSAGE_BYTES)
            except OSError as error:
                raise TemplateGone(f"fork request failed: {error}") from None
        finally:
            for fd in theirs:
                os.close(fd)
        pid = self._forked_pid(reply)
        if pid is None:
            os.close(to_write)
            os.close(from_read)
            raise TemplateGone(f"unusable reply from the template: {reply[:200]!r}")
        worker = WorkerProcess.adopt(pid, to_write, from_read, self.config, region=region)
        worker.wait_ready(self.config.init_timeout_s, self.interrupt_fd)
        if parent_pid(pid) != os.getpid():  # READY is only sent once adopted; anything else is a lie
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


class AutoFactory(WorkerFactory):
    """The default, ``auto``: the first worker is a plain one; once it is ready, its RSS picks ``spare`` or ``fork``
    (see strategy_choice.py), which makes every worker after it. Neither keeps a second initialised worker before
    the first response: the standby starts after it, the fork template at the first fault.

    Faults closer together than the user's init would make ``spare`` wait for its standby's init each time, so a
    fault that finds the standby still initialising switches to ``fork`` (its template serves the faults that
    follow in a fork's time), and ``spare`` comes back after :data:`CALM_AFTER_S` without a fault."""

    strategy = "auto"

    def __init__(self, config: Config, environ: Mapping[str, str], cpu_handoff: CpuHandoff | None = None) -> None:
        super().__init__(config, environ, cpu_handoff)
        self._chosen: WorkerFactory | None = None
        self._forking_since_fault_at: float | None = None  # set while `fork` stands in for `spare`
        self._may_fork = True  # until a template failed where plain workers did not

    def start(self) -> WorkerProcess:
        first = self._spawn_ready()
        strategy, reason = choose_strategy(self.config.memory_size_mb, rss_bytes(os.getpid()), first.own_rss_bytes())
        emit("strategy_chosen", "respawn strategy chosen", strategy=strategy, reason=reason)
        self._chosen = FACTORIES[strategy](self.config, self.environ, self.cpu_handoff)  # makes every later worker
        self.strategy = strategy
        return first

    def replace(self) -> WorkerProcess:
        if (isinstance(self._chosen, SpareFactory) and self._may_fork
                and self._chosen.standby_initialising()):
            self._switch("fork", "a fault while the standby is still initialising: forking until faults calm down")
        if self._forking_since_fault_at is None:
            return self._chosen.replace() if self._chosen is not None else super().replace()
        self._forking_since_fault_at = time.monotonic()
        try:
            return self._chosen.replace() if self._chosen is not None else super().replace()
        except WorkerInitFailed as failure:  # the user's init cannot be a template's (it breaks its own pipe, say)
            self._may_fork = False
            self._switch("spare", f"the fork template failed: {failure}")
            return super().replace()

    def maintain(self) -> None:
        since = self._forking_since_fault_at
        if since is not None and time.monotonic() - since >= CALM_AFTER_S:
            self._switch("spare", f"no fault for {CALM_AFTER_S:.0f} s: a standby again")
        if self._chosen is not None:
            self._chosen.maintain()

    def _switch(self, strategy: str, reason: str) -> None:
        """Hand the making of workers to ``strategy``, stopping what the current one keeps in reserve (the active
        worker, a child of ours wherever it came from, is not touched)."""
        if self._chosen is not None:
            self._chosen.close(0)
        self._chosen = FACTORIES[strategy](self.config, self.environ, self.cpu_handoff)
        self.strategy = strategy
        self._forking_since_fault_at = time.monotonic() if strategy == "fork" else None
        emit("strategy_switched", "respawn strategy switched", strategy=strategy, reason=reason)

    def reserves(self) -> list[WorkerProcess]:
        return self._chosen.reserves() if self._chosen is not None else []

    def close(self, grace_s: float) -> None:
        if self._chosen is not None:
            self._chosen.close(grace_s)


FACTORIES: dict[str, type[WorkerFactory]] = {
    "auto": AutoFactory, "fresh": WorkerFactory, "spare": SpareFactory, "fork": ForkFactory}


def make_factory(config: Config, environ: Mapping[str, str], cpu_handoff: CpuHandoff | None = None
                 ) -> WorkerFactory:
    return FACTORIES[config.respawn](config, environ, cpu_handoff)
