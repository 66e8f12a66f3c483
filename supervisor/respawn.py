"""Where workers come from: the respawn strategies ``fresh``, ``spare`` and ``fork``.

A fault should cost one request, not a cold start. The strategies trade memory for recovery time:

- ``fresh``: a new interpreter runs the user's init again. Nothing is shared and nothing kept in reserve; a
  replacement takes interpreter start-up plus the user's init.
- ``spare``: one standby worker is always initialised ahead of need. A replacement is a promotion (the standby's
  READY frame is already waiting in its pipe) and a new standby starts in the background, overlapping the next
  invocations. Costs the memory of a second initialised worker.
- ``fork``: a template process ran the user's init once and forks workers on request (copy-on-write), like
  gunicorn's ``preload_app``. A replacement costs a fork; but whatever the init opened is shared by all workers.
- ``auto`` (the default): ``fork``, with its template started after the first response where a second initialised
  process fits the function's memory, else at the first fault; but ``spare`` where it fits and the user's init
  left a socket open or a thread running, which forks would share or lack (see strategy_choice.py).

Every strategy hands the loop a worker that is ready, or raises WorkerInitFailed.
"""

from __future__ import annotations

import os
import sys
import time
from _socket import AF_UNIX, SCM_RIGHTS, SOCK_SEQPACKET, SOL_SOCKET, socketpair
from _socket import socket as Socket
from _thread import allocate_lock  # not threading: its import costs every start, for a lock
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
from .process_tree import Children, parent_pid
from .strategy_choice import auto_choice, choose_for_slots
from .worker_launch import Launched, make_region
from .worker_limits import WorkerLimits
from .worker_process import WorkerInitFailed, WorkerProcess, WorkerWaitInterrupted

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's

if TYPE_CHECKING:
    from typing import TypeVar

    from .memory_budget import MemoryBudget

    _Factory = TypeVar("_Factory", bound="WorkerFactory")

#: The pause before a lost standby is started again: doubled with each loss in a row, jittered, capped.
SPARE_RETRY_INITIAL_S = 0.2
SPARE_RETRY_MAX_S = 30.0


def _memory_budget(total_bytes: int, children: Children, poll_s: float) -> MemoryBudget:
    """Several slots' one memory budget (imported only then: a single slot does without it)."""
    from .memory_budget import MemoryBudget

    return MemoryBudget(total_bytes, children, poll_s)


def _promote(reserve: WorkerProcess) -> None:
    """Normal priority again, for a standby or a template started ahead and whatever its init started, before it
    serves or forks (or finishes its init while a request waits)."""
    from .priority import restore_normal  # a standby's or template's: after the first response

    if not restore_normal(reserve.pid):
        emit("priority_not_restored", "a standby or template could not be given normal priority back",
             level="WARNING", pid=reserve.pid)


def _stop_reserve(reserve: WorkerProcess, grace_s: float) -> None:
    """Stop a standby or template at normal priority: at idle priority, beside a process that keeps its CPU busy
    (the hand-off's old home, see cpu_home.py), it barely runs, even to handle its SIGTERM or to exit after SIGKILL,
    and the supervisor waits for it."""
    from .priority import restore_normal

    if not reserve.has_exited():
        restore_normal(reserve.pid)  # a refusal changes nothing here: the stop goes on as before
    reserve.terminate(grace_s)


def _send_fds(sock: Socket, data: bytes, fds: list[int]) -> None:
    """``socket.send_fds`` on the C socket type (socket.py stays off the supervisor's path): ``data`` with ``fds``
    as SCM_RIGHTS, each a C int."""
    rights = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
    sock.sendmsg([data], [(SOL_SOCKET, SCM_RIGHTS, rights)])


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

    def __init__(self, config: Config, environ: Mapping[str, str], children: Children,
                 cpu_handoff: CpuHandoff | None = None) -> None:
        self.config = config
        self.environ = environ
        self.children = children  # every worker made is tracked there
        budget = (_memory_budget(config.total_rss_bytes, children, config.memory_poll_ms / 1000)
                  if config.concurrency > 1 else None)  # several slots: all workers together are held to a total
        self.limits = WorkerLimits.from_config(config, budget)  # given to every worker made
        self.cpu_handoff = cpu_handoff
        #: Readable once shutdown is requested (the supervisor's self-pipe): every wait for a starting worker ends.
        self.interrupt_fd: int | None = None
        #: The first worker, when the bootstrap started it early (see cli.py); taken by the first plain spawn.
        self.prelaunched: Launched | None = None

    def _spawn(self, template_control_fd: int | None = None) -> WorkerProcess:
        if self.prelaunched is not None and template_control_fd is None:
            launched, self.prelaunched = self.prelaunched, None
            return WorkerProcess.take_over(launched, self.limits, self.children)
        return WorkerProcess.spawn(self.config, self.environ, self.limits, self.children, template_control_fd,
                                   self.cpu_handoff)

    def _spawn_ready(self) -> WorkerProcess:
        worker = self._spawn()
        worker.wait_ready(self.config.init_timeout_s, self.interrupt_fd)
        return worker

    def start(self) -> WorkerProcess:
        """The first worker, at cold start (its init failure is the function's init failure)."""
        return self._spawn_ready()

    def start_many(self, count: int) -> list[WorkerProcess]:
        """The first workers of ``count`` slots, at cold start: all started before any is waited for, so that
        their inits overlap."""
        workers = [self._spawn() for _ in range(count)]
        try:
            for worker in workers:
                worker.wait_ready(self.config.init_timeout_s, self.interrupt_fd)
        except BaseException:
            for worker in workers:
                worker.kill()
            raise
        return workers

    def replace(self) -> WorkerProcess:
        """A ready worker to take over from one that died or was retired."""
        return self._spawn_ready()

    def maintain(self) -> None:
        """Between invocations: repair whatever the strategy keeps in reserve."""

    def upkeep_due(self) -> bool:
        """Whether :meth:`maintain` has something to do now (a reserve to start or to bury): the slot then asks for
        ``next`` only after it, so that no reserve is started while Lambda may already freeze the sandbox."""
        return False

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

    def __init__(self, config: Config, environ: Mapping[str, str], children: Children,
                 cpu_handoff: CpuHandoff | None = None) -> None:
        super().__init__(config, environ, children, cpu_handoff)
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
            _promote(promoted)
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

    def upkeep_due(self) -> bool:
        spare = self._spare
        return spare.has_exited() if spare is not None else time.monotonic() >= self._next_spare_at

    def _spawn_standby(self) -> WorkerProcess:
        from .priority import lower_to_idle  # a standby starts after the first response

        standby = self._spawn()
        priority = lower_to_idle(standby.pid)
        emit("spare_started", "standby worker started", level="DEBUG", pid=standby.pid,
             priority=priority or "normal")
        return standby

    def _standby_lost(self, standby: WorkerProcess) -> None:
        """Log a dead standby with the reason it gave (its init error), and pause before starting the next."""
        self._spare_failures += 1
        ceiling = min(SPARE_RETRY_INITIAL_S * 2 ** (self._spare_failures - 1), SPARE_RETRY_MAX_S)
        import random  # only here: a standby that dies is rare

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
            _stop_reserve(self._spare, grace_s)
            self._spare = None


class TemplateGone(Exception):
    """The fork template exited or broke its protocol."""


class ForkFactory(WorkerFactory):
    """Forks every worker from a template. With ``ahead`` (``auto``, where it fits), the template is started
    between invocations, at idle priority like a standby, rather than at the first fault; a template started ahead
    that dies in its init is not started ahead again."""

    strategy = "fork"

    def __init__(self, config: Config, environ: Mapping[str, str], children: Children,
                 cpu_handoff: CpuHandoff | None = None) -> None:
        super().__init__(config, environ, children, cpu_handoff)
        self._template: WorkerProcess | None = None
        self._control: Socket | None = None
        self._fork_lock = allocate_lock()
        self._template_ready = False
        self.ahead = False

    def _start_template(self, *, wait: bool = True) -> None:
        ours, theirs = socketpair(AF_UNIX, SOCK_SEQPACKET)
        try:
            template = self._spawn(template_control_fd=theirs.fileno())
        finally:
            theirs.close()
        self._template, self._control, self._template_ready = template, ours, False
        if wait:
            self._await_template()
        else:
            from .priority import lower_to_idle  # a template started ahead starts after the first response

            priority = lower_to_idle(template.pid)
            emit("template_started", "fork template started ahead", level="DEBUG", pid=template.pid,
                 priority=priority or "normal")

    def _await_template(self) -> None:
        """Until the template is ready to fork (at normal priority: its workers inherit it)."""
        template = self._template
        assert template is not None
        if self._template_ready:
            return
        _promote(template)  # its forks inherit its priority
        try:
            template.wait_ready(self.config.init_timeout_s, self.interrupt_fd)
        except WorkerInitFailed:
            self._drop_template()
            raise
        self._template_ready = True

    def _drop_template(self, grace_s: float = 0.0) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._template is not None:
            _stop_reserve(self._template, grace_s)
            self._template = None

    def _fork(self) -> WorkerProcess:
        assert self._control is not None
        (to_read, to_write), (from_read, from_write) = WorkerProcess.make_pipes()
        region, region_fd = make_region(self.config.max_frame_payload_bytes)
        theirs = [to_read, from_write] if region_fd is None else [to_read, from_write, region_fd]
        try:
            # One request at a time, so the reply read is the answer to the request sent (several slots fork
            # from one template); a request that gets no reply in time drops the template with its late reply.
            with self._fork_lock:
                try:
                    _send_fds(self._control, ForkRequest().encode(), theirs)
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
        worker = WorkerProcess.adopt(pid, to_write, from_read, self.limits, self.children, region=region)
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

    def start_many(self, count: int) -> list[WorkerProcess]:
        """One template, one init; then ``count`` workers forked from it."""
        self._start_template()
        workers: list[WorkerProcess] = []
        try:
            for _ in range(count):
                workers.append(self.replace())
        except BaseException:
            for worker in workers:
                worker.kill()
            raise
        return workers

    def replace(self) -> WorkerProcess:
        if self._template is None or self._template.has_exited():
            if self._template is not None:
                emit("template_lost", "fork template died; starting another", level="WARNING",
                     pid=self._template.pid)
            self._drop_template()
            self._start_template()
        else:
            self._await_template()  # started ahead: maybe still in its init
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
            if self.ahead and not self._template_ready:
                self.ahead = False  # its init failed: the next one starts at a fault, and says why
                emit("template_lost", "fork template died in its init; the next starts at a fault",
                     level="WARNING", pid=self._template.pid)
            self._drop_template()  # restarted on the next replace(), when it is needed
        if self.ahead and self._template is None:
            self._start_template(wait=False)

    def upkeep_due(self) -> bool:
        template = self._template
        return template.has_exited() if template is not None else self.ahead

    def reserves(self) -> list[WorkerProcess]:
        return [self._template] if self._template is not None else []

    def close(self, grace_s: float) -> None:
        self._drop_template(grace_s)


class AutoFactory(WorkerFactory):
    """The default, ``auto``: the first worker is a plain one; every worker after it is forked from a template,
    which its RSS says to start after the first response or at the first fault (see strategy_choice.py), so that
    faults in a row each cost a fork; or, where a second initialised process fits but the first worker's init left
    a socket or a thread behind, comes from ``spare``. Nothing initialised is kept beside the first worker before
    the first response. A template that breaks where plain workers do not (the user's init cannot be a
    template's) hands over to ``spare``."""

    strategy = "auto"

    def __init__(self, config: Config, environ: Mapping[str, str], children: Children,
                 cpu_handoff: CpuHandoff | None = None) -> None:
        super().__init__(config, environ, children, cpu_handoff)
        self._chosen: WorkerFactory | None = None

    def start_many(self, count: int) -> list[WorkerProcess]:
        """With several slots: all forked from one template (strategy_choice.py), or, if the user's init cannot
        be a template's, each with its own init."""
        if count == 1:
            return [self.start()]
        strategy, reason = choose_for_slots(count)
        chosen = self._factory(strategy)
        try:
            workers = chosen.start_many(count)
        except WorkerInitFailed as failure:
            chosen.close(0)
            strategy, reason = "fresh", f"the fork template failed ({failure}): each slot runs its own init"
            chosen = self._factory(strategy)
            workers = chosen.start_many(count)
        emit("strategy_chosen", "respawn strategy chosen", strategy=strategy, reason=reason)
        self._chosen, self.strategy = chosen, strategy
        return workers

    def start(self) -> WorkerProcess:
        first = self._spawn_ready()
        choice = auto_choice(self.config.memory_size_mb, rss_bytes(os.getpid()), first.own_rss_bytes(),
                             first.init_leftovers)
        if choice.strategy == "spare":  # makes every later worker
            self._chosen = self._factory("spare")
            emit("strategy_chosen", "respawn strategy chosen", strategy="spare", reason=choice.reason)
        else:
            forks = self._equip(ForkFactory(self.config, self.environ, self.children, self.cpu_handoff))
            forks.ahead = choice.template_ahead
            emit("strategy_chosen", "respawn strategy chosen", strategy="fork",
                 template="ahead" if choice.template_ahead else "at-fault", reason=choice.reason)
            self._chosen = forks
        self.strategy = choice.strategy
        return first

    def replace(self) -> WorkerProcess:
        chosen = self._chosen
        if not isinstance(chosen, ForkFactory):
            return chosen.replace() if chosen is not None else super().replace()
        try:
            return chosen.replace()
        except WorkerInitFailed as failure:  # the user's init cannot be a template's (it breaks its own pipe, say)
            chosen.close(0)
            self._chosen = self._factory("spare")
            self.strategy = "spare"
            emit("strategy_switched", "respawn strategy switched", strategy="spare",
                 reason=f"the fork template failed: {failure}")
            return super().replace()

    def maintain(self) -> None:
        if self._chosen is not None:
            self._chosen.maintain()

    def upkeep_due(self) -> bool:
        return self._chosen is not None and self._chosen.upkeep_due()

    def _factory(self, strategy: str) -> WorkerFactory:
        return self._equip(FACTORIES[strategy](self.config, self.environ, self.children, self.cpu_handoff))

    def _equip(self, factory: _Factory) -> _Factory:
        """``factory``, given this one's shutdown descriptor (a shutdown ends its waits too) and limits (with
        several slots, the one memory budget all workers share)."""
        factory.interrupt_fd = self.interrupt_fd
        factory.limits = self.limits
        return factory

    def reserves(self) -> list[WorkerProcess]:
        return self._chosen.reserves() if self._chosen is not None else []

    def close(self, grace_s: float) -> None:
        if self._chosen is not None:
            self._chosen.close(grace_s)


FACTORIES: dict[str, type[WorkerFactory]] = {
    "auto": AutoFactory, "fresh": WorkerFactory, "spare": SpareFactory, "fork": ForkFactory}


def make_factory(config: Config, environ: Mapping[str, str], children: Children,
                 cpu_handoff: CpuHandoff | None = None) -> WorkerFactory:
    """The factory of the configured strategy; its workers are tracked in ``children``."""
    return FACTORIES[config.respawn](config, environ, children, cpu_handoff)
