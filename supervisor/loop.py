"""The supervisor's main loop: next -> worker -> exactly one post, then keep a healthy worker ready.

Faults never reach the loop as exceptions: the worker handle turns each into an :class:`Outcome` with an error
object and a fault reason. The loop posts first (the caller is waiting) and replaces the worker afterwards, before
asking for the next event, so a respawn costs no request its answer.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any

from lambda_supervisor.shared.errors import error_object

from .config import Config
from .events import emit
from .exit_codes import ExitCode
from .process_tree import become_subreaper, kill_orphans, reap_exited_orphans
from .runtime_api import Invocation, MalformedInvocation, RuntimeApiClient, RuntimeApiUnavailable
from .worker_process import FaultReason, WorkerInitFailed, WorkerProcess


class ShutdownRequested(BaseException):
    """Raised by the signal handler while the loop is idle in ``next`` (BaseException: nothing may swallow it)."""


class Supervisor:
    def __init__(self, config: Config, api: RuntimeApiClient, environ: Mapping[str, str]) -> None:
        self.config = config
        self.api = api
        self.environ = dict(environ)
        self.worker: WorkerProcess | None = None
        self._shutdown_requested = False
        self._idle = False

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def run(self) -> ExitCode:
        self._install_signal_handlers()
        if not become_subreaper():
            emit("no_subreaper", "could not become a child subreaper; escaped descendants go to init", level="WARNING")
        try:
            self.worker = self._start_worker()
            while not self._shutdown_requested:
                invocation = self._next_invocation()
                if invocation is not None:
                    self._serve(invocation)
                    self._keep_worker_healthy(invocation.request_id)
            return ExitCode.OK
        except ShutdownRequested:
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
            self._stop_worker()
            self.api.close()
            emit("supervisor_stopped", "supervisor stopped")

    def _install_signal_handlers(self) -> None:
        def request_shutdown(signum: int, _frame: FrameType | None) -> None:
            emit("shutdown_requested", "shutdown requested", signal=signal.Signals(signum).name)
            self._shutdown_requested = True
            # Lambda only stops a sandbox between invocations, so while idle in `next` there is nothing to lose.
            if self._idle:
                raise ShutdownRequested

        signal.signal(signal.SIGTERM, request_shutdown)
        signal.signal(signal.SIGINT, request_shutdown)

    def _stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.terminate(self.config.shutdown_grace_ms / 1000)
            emit("worker_stopped", "worker stopped", pid=self.worker.pid, exit=self.worker.exit_description,
                 served=self.worker.invocations)
        kill_orphans(keep=set())

    def _post_init_error(self, error: dict[str, Any]) -> None:
        try:
            self.api.post_init_error(error)
        except RuntimeApiUnavailable as problem:
            emit("init_error_unreported", "could not report the init error", level="ERROR", error=str(problem))

    # -- workers ------------------------------------------------------------------------------------------------

    def _start_worker(self) -> WorkerProcess:
        worker = WorkerProcess.spawn(self.config, self.environ)
        init_s = worker.wait_ready(self.config.init_timeout_s)
        emit("worker_ready", "worker ready", pid=worker.pid, init_ms=init_s * 1000)
        return worker

    def _replace_worker(self, reason: str, request_id: str, *, graceful: bool) -> None:
        """Retire or bury the current worker, then start and await a fresh one; log it all as one line."""
        old = self.worker
        assert old is not None
        if graceful:
            old.retire(self.config.shutdown_grace_ms / 1000)
        else:
            old.kill()
        self.worker = None
        kill_orphans(keep=set())
        started = time.monotonic()
        self.worker = self._start_worker()
        emit("worker_replaced", "worker replaced", reason=reason, request_id=request_id,
             exit=old.exit_description, served=old.invocations, peak_rss_mb=old.peak_rss_bytes / 2**20,
             old_pid=old.pid, new_pid=self.worker.pid, ready_ms=(time.monotonic() - started) * 1000)

    def _keep_worker_healthy(self, request_id: str) -> None:
        """Between invocations: replace a worker that died after replying, or one due for recycling."""
        worker = self.worker
        assert worker is not None
        if self._shutdown_requested:
            return
        reap_exited_orphans(keep={worker.pid})
        if worker.has_exited():
            self._replace_worker(FaultReason.CRASH, request_id, graceful=False)
        elif 0 < self.config.max_invocations <= worker.invocations:
            self._replace_worker("recycle-max-invocations", request_id, graceful=True)
        elif worker.own_rss_bytes() > self.config.max_rss_bytes:
            self._replace_worker("recycle-rss-over-limit", request_id, graceful=True)

    # -- invocations --------------------------------------------------------------------------------------------

    def _next_invocation(self) -> Invocation | None:
        self._idle = True
        try:
            if self._shutdown_requested:
                raise ShutdownRequested
            return self.api.next_invocation()
        except MalformedInvocation as error:
            emit("malformed_invocation", "skipping a malformed invocation", level="ERROR", error=str(error))
            return None
        finally:
            self._idle = False

    def _serve(self, invocation: Invocation, *, retried: bool = False) -> None:
        assert self.worker is not None
        if self.worker.has_exited():  # killed while idle (OOM killer, an operator): not this request's fault
            self._replace_worker("died-while-idle", invocation.request_id, graceful=False)
        worker = self.worker
        assert worker is not None
        outcome = worker.invoke(
            invocation,
            max_rss_bytes=self.config.max_rss_bytes,
            max_response_bytes=self.config.max_response_bytes,
            poll_s=self.config.memory_poll_ms / 1000,
            shutdown_requested=lambda: self._shutdown_requested,
            shutdown_grace_s=self.config.shutdown_grace_ms / 1000,
        )
        if not outcome.delivered and not retried:  # the worker broke before this event: not this request's fault
            self._replace_worker("died-while-idle", invocation.request_id, graceful=False)
            self._serve(invocation, retried=True)
            return
        if outcome.response is not None:
            self.api.post_response(invocation.request_id, outcome.response)
        else:
            error = outcome.error or error_object("Runtime.Unknown", "the worker gave no outcome")
            self.api.post_error(invocation.request_id, error)
            emit("invocation_failed", "invocation failed", request_id=invocation.request_id,
                 error_type=error["errorType"], fault=outcome.fault or "none")
        if outcome.fault is not None and not self._shutdown_requested:
            graceful = outcome.fault == FaultReason.MEMORY_ERROR  # the worker is alive and may exit cleanly
            self._replace_worker(outcome.fault, invocation.request_id, graceful=graceful)
