"""The supervisor's main loop: next -> worker -> exactly one post, then keep a healthy worker ready.

Faults never reach the loop as exceptions: the worker handle turns each into an outcome (outcome.py), an error
object with the reason the worker must be replaced. The loop posts first (the caller is waiting) and replaces the
worker afterwards, before asking for the next event, so a respawn costs no request its answer.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import signal
import time
from collections.abc import Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

from lambda_supervisor.shared.errors import ErrorType, error_object

from .config import Config
from .events import emit
from .exit_codes import ExitCode
from .idle_reaper import IdleReaper
from .outcome import Failure, Outcome, Response
from .outcome import ReplacementReason as Reason
from .process_tree import MAX_WORKER_ZOMBIES, Children
from .report import report_invocation
from .runtime_api import Invocation, MalformedInvocation, PostResult, RuntimeApiClient, RuntimeApiUnavailable
from .soft_timeout import SoftTimeout
from .worker_handle import Worker, WorkerSource
from .worker_process import WorkerInitFailed, WorkerWaitInterrupted

if TYPE_CHECKING:
    from tenacity import RetryCallState


def _log_respawn_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    emit("respawn_failed", "replacement worker failed init; backing off", level="WARNING",
         attempt=state.attempt_number, wait_ms=wait * 1000, error=str(error))


class ShutdownRequested(BaseException):
    """Raised by the signal handler while the loop is idle in ``next`` (BaseException: nothing may swallow it)."""


class Supervisor:
    """The main loop. It is handed its Runtime API client, where its workers come from (a respawn strategy, see
    respawn.py) and the bookkeeping of its children (in which those workers are tracked)."""

    def __init__(self, config: Config, api: RuntimeApiClient, environ: Mapping[str, str], factory: WorkerSource,
                 children: Children) -> None:
        self.config = config
        self.api = api
        self.environ = dict(environ)
        self.factory = factory
        self.children = children
        self.worker: Worker | None = None
        self.soft_timeout = SoftTimeout(config.soft_timeout_ms, self.environ)
        self._invocation_limit = 0
        self._shutdown_requested = False
        self._idle = False  # in the Runtime API's long poll: a SIGTERM ends it at once
        self._swept_at_signal_count: int | None = None  # no child has exited since that count: no sweep needed
        self._idle_reaper = IdleReaper(children, self._sweep_exited)
        # The self-pipe: SIGTERM writes a byte, which ends any wait for a starting worker (and backoff sleeps).
        self._shutdown_read, self._shutdown_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.factory.interrupt_fd = self._shutdown_read

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def run(self) -> ExitCode:
        self._install_signal_handlers()
        self._move_to_home_cpu()
        if not self.children.become_subreaper():
            emit("no_subreaper", "could not become a child subreaper; escaped descendants go to init", level="WARNING")
        try:
            self.worker = self._start_worker()
            while not self._shutdown_requested:
                invocation = self._next_invocation()
                if invocation is not None:
                    self._serve(invocation)
                    self._keep_worker_healthy(invocation.request_id)
            return ExitCode.OK
        except (ShutdownRequested, WorkerWaitInterrupted):
            return ExitCode.OK
        except WorkerInitFailed as failure:
            error = failure.error
            emit("init_failed", "init failed", level="ERROR", error_type=error["errorType"],
                 message=error["errorMessage"])
            self._post_init_error(failure.error)
            return ExitCode.INIT_FAILED
        except RuntimeApiUnavailable as error:
            emit("runtime_api_gone", "runtime api gone, exiting", level="ERROR", error=str(error))
            return ExitCode.RUNTIME_API_GONE
        finally:
            self._idle_reaper.stop()  # before the workers are stopped: no sweep may run meanwhile
            self._stop_worker()
            self.api.close()
            os.close(self._shutdown_read)
            os.close(self._shutdown_write)
            emit("supervisor_stopped", "supervisor stopped", level="DEBUG")

    def _install_signal_handlers(self) -> None:
        def request_shutdown(signum: int, _frame: FrameType | None) -> None:
            emit("shutdown_requested", "shutdown requested", level="DEBUG", signal=signal.Signals(signum).name)
            self._shutdown_requested = True
            with contextlib.suppress(BlockingIOError):  # full: a byte is there already
                os.write(self._shutdown_write, b"x")
            # Lambda only stops a sandbox between invocations, so while idle in `next` there is nothing to lose.
            if self._idle:
                raise ShutdownRequested

        def count_child_signal(_signum: int, _frame: FrameType | None) -> None:
            self.children.count_signal()  # wakes the idle reaper; the loop's own checks read the count

        signal.signal(signal.SIGTERM, request_shutdown)
        signal.signal(signal.SIGINT, request_shutdown)
        signal.signal(signal.SIGCHLD, count_child_signal)
        self.children.start_counting_signals()
        self._idle_reaper.start()

    def _move_to_home_cpu(self) -> None:
        """Wait on the CPU the worker will wait on (see shared/cpu_handoff.py), before any worker is started."""
        handoff = self.factory.cpu_handoff  # what every worker it starts is told
        if handoff is None:
            return
        try:
            os.sched_setaffinity(0, {handoff.home})
        except OSError as error:
            emit("cpu_not_shared", "could not move to the home CPU; not sharing one", level="WARNING", error=str(error))
            self.factory.cpu_handoff = None
            return
        emit("cpu_shared", "waiting on one CPU with the worker", level="DEBUG", home_cpu=handoff.home,
             cpus=",".join(str(cpu) for cpu in sorted(handoff.cpus)))

    def _reap_exited(self) -> None:
        """Reap workers and adopted orphans that exited, so that no zombie lingers between invocations (while the
        loop is idle in ``next``, the idle reaper does this on every SIGCHLD). A dead worker is replaced when the
        next event comes (``died-while-idle``). With no SIGCHLD since the last sweep, there is nothing to sweep."""
        count = self.children.signal_count
        if count is None or count != self._swept_at_signal_count:
            self._sweep_exited()

    def _sweep_exited(self) -> None:
        count = self.children.signal_count  # read before the sweep: a child exiting during it changes the count
        workers = [worker for worker in (self.worker, *self.factory.reserves()) if worker is not None]
        for worker in workers:
            if worker.has_exited():
                worker.kill()  # reaps it (and SIGKILLs whatever is left of its process group)
        self.children.reap_exited_orphans(keep={worker.pid for worker in workers})
        # whatever a dead worker (active, standby or template) left behind dies with it, escaped or not
        self.children.kill_orphans()
        self._swept_at_signal_count = count

    def _stop_worker(self) -> None:
        self.factory.close(self.config.shutdown_grace_ms / 1000)
        if self.worker is not None:
            self.worker.terminate(self.config.shutdown_grace_ms / 1000)
            emit("worker_stopped", "worker stopped", level="DEBUG", pid=self.worker.pid,
                 exit=self.worker.exit_description, served=self.worker.invocations)
        self.children.kill_orphans()

    def _post_init_error(self, error: dict[str, Any]) -> None:
        try:
            self.api.post_init_error(error)
        except RuntimeApiUnavailable as problem:
            emit("init_error_unreported", "could not report the init error", level="ERROR", error=str(problem))

    # -- workers ------------------------------------------------------------------------------------------------

    def _adopt(self, worker: Worker) -> Worker:
        """Give a new worker its own recycling threshold (jittered, so workers do not all recycle together)."""
        jitter = self.config.max_invocations_jitter
        self._invocation_limit = self.config.max_invocations + (random.randint(0, jitter) if jitter else 0)
        return worker

    def _start_worker(self) -> Worker:
        worker = self._adopt(self.factory.start())
        # routine, and Lambda reports the init's duration itself: only faults and replacements are INFO lines
        emit("worker_ready", "worker ready", level="DEBUG", pid=worker.pid, strategy=self.factory.strategy,
             init_ms=(worker.ready_seconds or 0.0) * 1000)
        return worker

    def _replacement(self) -> Worker:
        """A ready worker from the strategy; a replacement that fails init is retried with jittered exponential
        backoff, so a crash loop is contained and reported rather than spun. tenacity is imported only once an
        attempt failed (its import would double a fork's recovery time); that attempt is replayed into it."""
        try:
            return self._adopt(self.factory.replace())
        except WorkerInitFailed as failure:
            failed: list[WorkerInitFailed] = [failure]

        def attempt() -> Worker:
            if failed:
                raise failed.pop()
            return self.factory.replace()

        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

        retrying = Retrying(
            stop=stop_after_attempt(self.config.respawn_attempts),
            wait=wait_exponential(multiplier=0.1, max=5.0) + wait_random(0, 1.0),  # the same in tenacity 8.2 and 9
            retry=retry_if_exception_type(WorkerInitFailed),
            before_sleep=_log_respawn_retry,
            sleep=self._sleep_unless_shutdown,
            reraise=True,
        )
        return self._adopt(retrying(attempt))

    def _sleep_unless_shutdown(self, seconds: float) -> None:
        """A backoff sleep that a shutdown request ends at once."""
        readable, _, _ = select.select([self._shutdown_read], [], [], seconds)
        if readable:
            raise WorkerWaitInterrupted("shutdown requested during a respawn backoff")

    def _replace_worker(self, reason: Reason, request_id: str, *, graceful: bool) -> None:
        """Retire or bury the current worker, then put a ready one in its place; log it all as one line."""
        old = self.worker
        assert old is not None
        if graceful:
            old.retire(self.config.shutdown_grace_ms / 1000)
        else:
            old.kill()
        self.worker = None
        self.children.kill_orphans()  # what the old worker left behind; the reserves' own processes are in their trees
        started = time.monotonic()
        self.worker = self._replacement()
        emit("worker_replaced", "worker replaced", reason=reason, request_id=request_id,
             exit=old.exit_description, served=old.invocations, peak_rss_mb=old.peak_rss_bytes / 2**20,
             old_pid=old.pid, new_pid=self.worker.pid, strategy=self.factory.strategy,
             ready_ms=(time.monotonic() - started) * 1000)

    def _replace_broken_worker(self, outcome: Failure, invocation: Invocation) -> None:
        """Replace a worker that broke before it could serve this request, naming whoever broke it: an earlier
        invocation whose stray frame arrived late, or (unknown) an exit while idle."""
        if outcome.blame is None:
            self._replace_dead_worker(invocation)
            return
        detail = outcome.error["errorMessage"]
        emit("stray_frame", "a frame arrived outside its invocation; blaming the invocation that sent it",
             level="WARNING", guilty_request_id=outcome.blame or "(init)", request_id=invocation.request_id,
             detail=detail)
        self._replace_dead_worker(invocation, Reason.STRAY_FRAME, outcome.blame or invocation.request_id)

    def _recycle_reason(self, worker: Worker) -> Reason | None:
        """Why a healthy worker should be retired now, between two requests (gunicorn/uWSGI/Celery policies)."""
        config = self.config
        if config.max_invocations and worker.invocations >= self._invocation_limit:
            return Reason.RECYCLE_MAX_INVOCATIONS
        if config.max_worker_age_s and time.monotonic() - worker.started_monotonic >= config.max_worker_age_s:
            return Reason.RECYCLE_MAX_AGE
        rss = worker.last_rss_bytes  # read when the worker answered
        if rss > config.max_rss_bytes:
            return Reason.RECYCLE_RSS_OVER_LIMIT
        if config.recycle_rss_mb and rss > config.recycle_rss_mb * 2**20:
            return Reason.RECYCLE_RSS_SOFT_LIMIT
        if worker.zombie_children >= MAX_WORKER_ZOMBIES:  # counted when it answered
            return Reason.RECYCLE_ZOMBIES
        return None

    def _keep_worker_healthy(self, request_id: str) -> None:
        """Between invocations: replace a worker that died after replying or is due for recycling."""
        worker = self.worker
        assert worker is not None
        if self._shutdown_requested:
            return
        if worker.has_exited():
            self._replace_worker(Reason.CRASH, request_id, graceful=False)
        elif (reason := self._recycle_reason(worker)) is not None:
            self._replace_worker(reason, request_id, graceful=True)
        self.factory.maintain()

    # -- invocations --------------------------------------------------------------------------------------------

    def _next_invocation(self) -> Invocation | None:
        self._reap_exited()  # whatever exited between the last check and now; the idle reaper sees what follows
        try:
            with self._idle_reaper.idle():
                self._idle = True
                try:
                    if self._shutdown_requested:
                        raise ShutdownRequested
                    return self.api.next_invocation()
                finally:
                    self._idle = False
        except MalformedInvocation as error:
            emit("malformed_invocation", "skipping a malformed invocation", level="ERROR", error=str(error))
            return None

    def _serve(self, invocation: Invocation, *, retried: bool = False) -> None:
        assert self.worker is not None
        if self.worker.has_exited():  # killed while idle (OOM killer, an operator): not this request's fault
            self._replace_dead_worker(invocation)
        worker = self.worker
        assert worker is not None
        outcome = worker.invoke(invocation, soft_timeout_ms=self.soft_timeout.for_invocation(invocation),
                                shutdown_requested=lambda: self._shutdown_requested)
        if isinstance(outcome, Failure) and not outcome.delivered and not retried:
            self._replace_broken_worker(outcome, invocation)  # it broke before this event: not this request's fault
            self._serve(invocation, retried=True)
            return
        if isinstance(outcome, Failure) and outcome.never_sent:
            emit("no_time_left", "event arrived with less time left than the timeout margin; answered without "
                 "running it", level="WARNING", request_id=invocation.request_id,
                 margin_ms=self.config.timeout_margin_ms)
        fault = outcome.fault
        if self._post_outcome(invocation, worker, outcome) is PostResult.ALREADY_ANSWERED:
            emit("foreign_post", "SECURITY: the Runtime API says this request was already answered, and not by the "
                 "supervisor: code in the worker posted to the Runtime API; replacing the worker", level="WARNING",
                 request_id=invocation.request_id)
            fault = fault or Reason.FOREIGN_POST
        if fault is not None and self._shutdown_requested:
            worker.kill()  # a timed-out worker is left (frozen, or writing its stack dump) until its error is posted
        elif fault is not None:
            graceful = fault == Reason.MEMORY_ERROR  # the worker is alive and may exit cleanly
            self._replace_worker(fault, invocation.request_id, graceful=graceful)

    def _replace_dead_worker(self, invocation: Invocation, reason: Reason = Reason.DIED_WHILE_IDLE,
                             blamed_request_id: str | None = None) -> None:
        """Replace a worker that died (or broke) before the event reached it. If a shutdown cuts that short, the
        event still gets its one post before the supervisor exits."""
        try:
            self._replace_worker(reason, blamed_request_id or invocation.request_id, graceful=False)
        except WorkerWaitInterrupted:
            request_id = invocation.request_id
            message = f"RequestId: {request_id} Error: Runtime exited with error: the runtime is shutting down"
            self.api.post_error(request_id, error_object(ErrorType.EXIT, message))
            raise

    def _post_outcome(self, invocation: Invocation, worker: Worker, outcome: Outcome) -> PostResult:
        """Post the one response or error; the invocation's bookkeeping is done while the Runtime API handles it."""
        finished = time.monotonic()

        def report() -> None:  # done while the Runtime API handles the post, not between two invocations
            worker.own_rss_bytes()  # one /proc read serves the REPORT line and recycling
            worker.count_zombie_children(MAX_WORKER_ZOMBIES)  # one more tells whether its adopted zombies pile up
            if self.config.report:  # opt-in: Lambda writes its own REPORT line for every invocation
                report_invocation(invocation, worker, outcome, finished)

        if isinstance(outcome, Response):
            return self.api.post_response(invocation.request_id, outcome.body, content_type=outcome.content_type,
                                          meanwhile=report)
        # a handler's own error is logged by the worker, as awslambdaric does; a fault only the supervisor saw
        emit("invocation_failed", "invocation failed", level="INFO" if outcome.fault else "DEBUG",
             request_id=invocation.request_id, error_type=outcome.error_type, fault=outcome.fault or "none")
        return self.api.post_error(invocation.request_id, outcome.error, xray_cause=outcome.xray_cause,
                                   meanwhile=report)
