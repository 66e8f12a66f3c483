"""One slot: one worker, one Runtime API connection, and the per-invocation loop next -> worker -> one post.

Faults never reach the loop as exceptions: the worker handle turns each into an outcome (outcome.py), an error
object with the reason the worker must be replaced. The slot posts first (the caller is waiting) and replaces the
worker afterwards, before asking for the next event, so a respawn costs no request its answer.

A single-slot supervisor runs its one slot on the main thread; with Managed Instances' concurrency each slot runs
on a thread of its own (slots.py), with its own deadlines, memory limit, recycling and respawns. A slot's fault
stays in its slot.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from lambda_supervisor.shared.errors import ErrorType, error_object

from .config import Config
from .events import emit
from .outcome import Failure, Outcome, Response
from .outcome import ReplacementReason as Reason
from .process_tree import MAX_WORKER_ZOMBIES, Children
from .runtime_api import Invocation, MalformedInvocation, PostResult, RuntimeApiClient, RuntimeApiUnavailable
from .soft_timeout import SoftTimeout
from .worker_process import WorkerInitFailed, WorkerWaitInterrupted

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's

if TYPE_CHECKING:
    from typing import Any

    from tenacity import RetryCallState

    from .cpu_home import HomeCpu
    from .worker_handle import Worker, WorkerSource


class ShutdownRequested(BaseException):
    """Raised by the signal handler while the loop is idle in ``next`` (BaseException: nothing may swallow it)."""


#: What ends a slot by design: a shutdown, the Runtime API gone, a replacement that never passes init. Any other
#: error is a bug, and costs at most the request in hand (see Slot._start_over).
ENDS_THE_SLOT = (ShutdownRequested, WorkerWaitInterrupted, WorkerInitFailed, RuntimeApiUnavailable)
#: More unexpected errors in a row than this end the slot: a bug that recurs at once is not hidden by restarts.
MAX_ERRORS_IN_A_ROW = 3


class SlotHooks:
    """What a slot is given by the supervisor that runs it: whether shutdown was requested, a descriptor readable
    once it is, how to sweep exited children before polling, and the block to poll ``next`` in (idle)."""

    def __init__(self, shutdown_requested: Callable[[], bool], shutdown_fd: int, reap_exited: Callable[[], None],
                 idle: Callable[[], AbstractContextManager[None]]) -> None:
        self.shutdown_requested = shutdown_requested
        self.shutdown_fd = shutdown_fd
        self.reap_exited = reap_exited
        self.idle = idle


class Slot:
    """The per-invocation loop of one slot. ``index`` and ``count`` name it among the supervisor's slots (a single
    slot is not named in logs and metrics) and stagger its recycling against the others'."""

    def __init__(self, config: Config, api: RuntimeApiClient, factory: WorkerSource, children: Children,
                 soft_timeout: SoftTimeout, hooks: SlotHooks, *, index: int = 0, count: int = 1) -> None:
        self.config = config
        self.api = api
        self.factory = factory
        self.children = children
        self.soft_timeout = soft_timeout
        self.hooks = hooks
        self.index = index
        self.count = count
        self.labels: dict[str, Any] = {"slot": index} if count > 1 else {}
        self.worker: Worker | None = None
        self._invocation_limit = 0
        self._age_limit_s = 0.0
        self._first = True  # the slot's first worker: its recycling is staggered against the other slots'
        self._posted = False  # whether the request in hand has had its one post
        self._errors_in_a_row = 0  # unexpected errors since the slot last went round its loop cleanly
        self._home: HomeCpu | None = None  # the CPU hand-off's home, watched from the first post on (cpu_home.py)
        self._watch_home = True

    # -- the loop -----------------------------------------------------------------------------------------------

    def serve_until_shutdown(self) -> None:
        """Serve events until shutdown is requested (or the Runtime API is gone: RuntimeApiUnavailable)."""
        while not self.hooks.shutdown_requested():
            invocation: Invocation | None = None
            try:
                invocation = self._next_invocation()
                if invocation is not None:
                    self._posted = False
                    self._serve(invocation)
                    self._keep_worker_healthy(invocation.request_id)
                self._errors_in_a_row = 0
            except ENDS_THE_SLOT:
                raise
            except Exception as error:  # a bug: it costs at most this request, as a worker's fault would
                self._start_over(invocation, error)

    def _start_over(self, invocation: Invocation | None, error: Exception) -> None:
        """After an unexpected error: the request in hand gets its one post if it has none yet, and the slot goes on
        with a new worker. Errors in a row beyond MAX_ERRORS_IN_A_ROW end the slot (and the runtime)."""
        self._errors_in_a_row += 1
        emit("slot_error", "unexpected error in a slot; starting it over with a new worker", level="ERROR",
             error=repr(error), request_id=invocation.request_id if invocation else "(none)", **self.labels)
        if self._errors_in_a_row > MAX_ERRORS_IN_A_ROW:
            raise error
        if invocation is not None and not self._posted:
            request_id = invocation.request_id
            message = f"RequestId: {request_id} Error: Runtime exited with error: internal error in the runtime"
            self.api.post_error(request_id, error_object(ErrorType.EXIT, message))
            self._posted = True
        old, self.worker = self.worker, None
        if old is not None:
            try:
                old.kill()
            except Exception as kill_error:  # whatever it was, a new worker takes its place
                emit("kill_failed", "could not kill the slot's worker", level="WARNING", pid=old.pid,
                     error=repr(kill_error), **self.labels)
        self.children.kill_orphans()
        if self.hooks.shutdown_requested():
            return  # the loop ends here: no new worker to start
        started = time.monotonic()
        self.worker = self._replacement()
        emit("worker_replaced", "worker replaced", reason=Reason.SUPERVISOR_ERROR,
             request_id=invocation.request_id if invocation else "", exit=old.exit_description if old else None,
             served=old.invocations if old else 0, old_pid=old.pid if old else 0, new_pid=self.worker.pid,
             strategy=self.factory.strategy, ready_ms=(time.monotonic() - started) * 1000, **self.labels)

    def take_worker(self, worker: Worker) -> None:
        """Start the slot with a ready worker."""
        self.worker = self._adopt(worker)
        # routine, and Lambda reports the init's duration itself: only faults and replacements are INFO lines
        emit("worker_ready", "worker ready", level="DEBUG", pid=worker.pid, strategy=self.factory.strategy,
             init_ms=(worker.ready_seconds or 0.0) * 1000, **self.labels)

    def stop_worker(self) -> None:
        """Forward SIGTERM to the worker, give it the shutdown grace, then make sure (once)."""
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.terminate(self.config.shutdown_grace_ms / 1000)
            emit("worker_stopped", "worker stopped", level="DEBUG", pid=worker.pid,
                 exit=worker.exit_description, served=worker.invocations, **self.labels)

    # -- workers ------------------------------------------------------------------------------------------------

    def _adopt(self, worker: Worker) -> Worker:
        """Give a new worker its own recycling thresholds: jittered, and for a slot's first worker cut to
        (count - index) / count of them, so that the slots' workers never all recycle at once."""
        config = self.config
        jitter = config.max_invocations_jitter
        part, whole = (self.count - self.index, self.count) if self._first else (1, 1)
        share = part / whole
        self._first = False
        if jitter:
            import random  # only here: without a jitter (the default) the supervisor does without it

            limit = config.max_invocations + random.randint(0, jitter)
        else:
            limit = config.max_invocations
        self._invocation_limit = max(-(-limit * part // whole), 1)  # limit * share, rounded up (in integers)
        self._age_limit_s = config.max_worker_age_s * share
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
            before_sleep=self._log_respawn_retry,
            sleep=self._sleep_unless_shutdown,
            reraise=True,
        )
        return self._adopt(retrying(attempt))

    def _log_respawn_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        emit("respawn_failed", "replacement worker failed init; backing off", level="WARNING",
             attempt=state.attempt_number, wait_ms=wait * 1000, error=str(error), **self.labels)

    def _sleep_unless_shutdown(self, seconds: float) -> None:
        """A backoff sleep that a shutdown request ends at once."""
        readable, _, _ = select.select([self.hooks.shutdown_fd], [], [], seconds)
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
             ready_ms=(time.monotonic() - started) * 1000, **self.labels)

    def _replace_broken_worker(self, outcome: Failure, invocation: Invocation) -> None:
        """Replace a worker that broke before it could serve this request, naming whoever broke it: an earlier
        invocation whose stray frame arrived late, or (unknown) an exit while idle."""
        if outcome.blame is None:
            self._replace_dead_worker(invocation)
            return
        detail = outcome.error["errorMessage"]
        emit("stray_frame", "a frame arrived outside its invocation; blaming the invocation that sent it",
             level="WARNING", guilty_request_id=outcome.blame or "(init)", request_id=invocation.request_id,
             detail=detail, **self.labels)
        self._replace_dead_worker(invocation, Reason.STRAY_FRAME, outcome.blame or invocation.request_id)

    def _recycle_reason(self, worker: Worker) -> Reason | None:
        """Why a healthy worker should be retired now, between two requests (gunicorn/uWSGI/Celery policies)."""
        config = self.config
        if config.max_invocations and worker.invocations >= self._invocation_limit:
            return Reason.RECYCLE_MAX_INVOCATIONS
        if config.max_worker_age_s and time.monotonic() - worker.started_monotonic >= self._age_limit_s:
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
        if self.hooks.shutdown_requested():
            return
        if worker.has_exited():
            self._replace_worker(Reason.CRASH, request_id, graceful=False)
        elif (reason := self._recycle_reason(worker)) is not None:
            self._replace_worker(reason, request_id, graceful=True)
        self.factory.maintain()

    # -- invocations --------------------------------------------------------------------------------------------

    def _next_invocation(self) -> Invocation | None:
        self.hooks.reap_exited()  # what exited between the last check and now; the idle sweep sees what follows
        try:
            with self.hooks.idle():
                if self.hooks.shutdown_requested():
                    raise ShutdownRequested
                return self.api.next_invocation()
        except MalformedInvocation as error:
            emit("malformed_invocation", "skipping a malformed invocation", level="ERROR", error=str(error),
                 **self.labels)
            return None

    def _serve(self, invocation: Invocation, *, retried: bool = False) -> None:
        assert self.worker is not None
        if self.worker.has_exited():  # killed while idle (OOM killer, an operator): not this request's fault
            self._replace_dead_worker(invocation)
        worker = self.worker
        assert worker is not None
        home = self._home.home if self._home is not None and self._home.moved else None
        outcome = worker.invoke(invocation, soft_timeout_ms=self.soft_timeout.for_invocation(invocation),
                                shutdown_requested=self.hooks.shutdown_requested, home_cpu=home)
        if isinstance(outcome, Failure) and not outcome.delivered and not retried:
            self._replace_broken_worker(outcome, invocation)  # it broke before this event: not this request's fault
            self._serve(invocation, retried=True)
            return
        if isinstance(outcome, Failure) and outcome.never_sent:
            emit("no_time_left", "event arrived with less time left than the timeout margin; answered without "
                 "running it", level="WARNING", request_id=invocation.request_id,
                 margin_ms=self.config.timeout_margin_ms, **self.labels)
        fault = outcome.fault
        if self._post_outcome(invocation, worker, outcome) is PostResult.ALREADY_ANSWERED:
            emit("foreign_post", "SECURITY: the Runtime API says this request was already answered, and not by the "
                 "supervisor: code in the worker posted to the Runtime API; replacing the worker", level="WARNING",
                 request_id=invocation.request_id, **self.labels)
            fault = fault or Reason.FOREIGN_POST
        if fault is not None and self.hooks.shutdown_requested():
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
            self._posted = True
            raise

    def _stays_for_the_next(self, worker: Worker, outcome: Outcome) -> bool:
        """Whether ``next`` may be asked with this outcome's post: the worker serves the next event as it is and
        the strategy has no reserve to start, as far as can be told before the post (the worker's memory is read
        while the post is in flight; should that, or an exit right after replying, call for a new worker, the
        replacement then runs while ``next`` is asked)."""
        return (self.config.pipeline_next and outcome.fault is None and not self.hooks.shutdown_requested()
                and not worker.has_exited() and self._recycle_reason(worker) is None
                and not self.factory.upkeep_due())

    def _look_at_home(self, worker: Worker, now: float) -> None:
        """While a post is in flight: move the hand-off's home off a CPU something else keeps busy. Set up at the
        first post, so that the module is not on the way to the first response."""
        if self._home is None:
            handoff = self.factory.cpu_handoff if self.count == 1 else None
            if handoff is None:
                self._watch_home = False
                return
            from .cpu_home import HomeCpu

            self._home = HomeCpu(handoff)
        moved = self._home.look(now, worker.pid, self._reserve_pids)
        if moved is not None:
            emit("cpu_home_moved", "moved the CPU hand-off's home off a CPU that something else keeps busy",
                 level="INFO", from_cpu=moved[0], to_cpu=moved[1], **self.labels)

    def _reserve_pids(self) -> list[int]:
        return [reserve.pid for reserve in self.factory.reserves()]

    def _post_outcome(self, invocation: Invocation, worker: Worker, outcome: Outcome) -> PostResult:
        """Post the one response or error; the invocation's bookkeeping is done while the Runtime API handles it."""
        finished = time.monotonic()
        ask_next = self._stays_for_the_next(worker, outcome)

        def report() -> None:  # done while the Runtime API handles the post, not between two invocations
            worker.own_rss_bytes()  # one /proc read serves the REPORT line and recycling
            worker.count_zombie_children(MAX_WORKER_ZOMBIES)  # one more tells whether its adopted zombies pile up
            if self.config.report:  # opt-in: Lambda writes its own REPORT line for every invocation
                from .report import report_invocation  # imported once, when first asked for

                report_invocation(invocation, worker, outcome, finished)
            if self._watch_home:
                self._look_at_home(worker, finished)

        if isinstance(outcome, Response):
            result = self.api.post_response(invocation.request_id, outcome.body, content_type=outcome.content_type,
                                            meanwhile=report, ask_next=ask_next)
        else:
            # a handler's own error is logged by the worker, as awslambdaric does; a fault only the supervisor saw
            emit("invocation_failed", "invocation failed", level="INFO" if outcome.fault else "DEBUG",
                 request_id=invocation.request_id, error_type=outcome.error_type, fault=outcome.fault or "none",
                 **self.labels)
            result = self.api.post_error(invocation.request_id, outcome.error, xray_cause=outcome.xray_cause,
                                         meanwhile=report, ask_next=ask_next)
        self._posted = True
        return result
