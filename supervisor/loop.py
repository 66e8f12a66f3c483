"""The supervisor: its lifecycle (signals, the first workers, shutdown) around one slot or several.

One slot (slot.py) is the loop next -> worker -> exactly one post, then keep a healthy worker ready. Unless
concurrency is asked for (Lambda Managed Instances' ``AWS_LAMBDA_MAX_CONCURRENCY``), there is one slot, run on the
main thread, and a SIGTERM while it waits in ``next`` ends it at once. With N slots, each runs on a thread of its
own (slots.py) and the main thread only waits for a shutdown request, then drains.
"""

from __future__ import annotations

import _signal as signal  # not signal.py: its enums cost every start (shared/signal_names.py)
import contextlib
import os
from collections.abc import Callable, Mapping
from types import FrameType

from lambda_supervisor.shared.signal_names import signal_name

from .config import Config
from .events import emit
from .exit_codes import ExitCode
from .idle_reaper import IdleReaper
from .process_tree import Children
from .runtime_api import RuntimeApiClient, RuntimeApiUnavailable
from .slot import ShutdownRequested, Slot, SlotHooks
from .soft_timeout import SoftTimeout
from .worker_process import WorkerInitFailed, WorkerWaitInterrupted

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's

if TYPE_CHECKING:
    from .slots import SlotGroup
    from .worker_handle import Worker, WorkerSource

__all__ = ["ShutdownRequested", "Supervisor"]


class Supervisor:
    """It is handed its Runtime API client, where its workers come from (a respawn strategy, see respawn.py) and
    the bookkeeping of its children (in which those workers are tracked); with several slots, ``make_api`` makes
    each further slot's own client."""

    def __init__(self, config: Config, api: RuntimeApiClient, environ: Mapping[str, str], factory: WorkerSource,
                 children: Children, *, make_api: Callable[[], RuntimeApiClient] | None = None) -> None:
        self.config = config
        self.api = api
        self.environ = dict(environ)
        self.factory = factory
        self.children = children
        self.make_api = make_api
        self.soft_timeout = SoftTimeout(config.soft_timeout_ms, self.environ)
        self._shutdown_requested = False
        self._idle = False  # in the Runtime API's long poll on the main thread: a SIGTERM ends it at once
        self._swept_at_signal_count: int | None = None  # no child has exited since that count: no sweep needed
        self._idle_reaper = IdleReaper(children, self._sweep_exited)
        self._long_poll = _LongPoll(self)
        # The self-pipe: SIGTERM writes a byte, which ends any wait for a starting worker (and backoff sleeps).
        self._shutdown_read, self._shutdown_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.factory.interrupt_fd = self._shutdown_read
        hooks = SlotHooks(self.shutdown_requested, self._shutdown_read, self._reap_exited, self._idle_in_next)
        self.slot = Slot(config, api, factory, children, self.soft_timeout, hooks)
        self._group: SlotGroup | None = None  # when there are several slots

    @property
    def worker(self) -> Worker | None:
        return self.slot.worker

    def shutdown_requested(self) -> bool:
        return self._shutdown_requested

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def run(self) -> ExitCode:
        self._install_signal_handlers()
        self._move_to_home_cpu()
        if not self.children.become_subreaper():
            emit("no_subreaper", "could not become a child subreaper; escaped descendants go to init", level="WARNING")
        try:
            if self.config.concurrency > 1:
                return self._run_slots()
            self.slot.take_worker(self.factory.start())
            self.slot.serve_until_shutdown()
            return ExitCode.OK
        except (ShutdownRequested, WorkerWaitInterrupted):
            return ExitCode.OK
        except WorkerInitFailed as failure:
            return self._init_failed(failure)
        except RuntimeApiUnavailable as error:
            emit("runtime_api_gone", "runtime api gone, exiting", level="ERROR", error=str(error))
            return ExitCode.RUNTIME_API_GONE
        finally:
            self._idle_reaper.stop()  # before the workers are stopped: no sweep may run meanwhile
            self._stop_workers()
            self.api.close()
            os.close(self._shutdown_read)
            os.close(self._shutdown_write)
            emit("supervisor_stopped", "supervisor stopped", level="DEBUG")

    def _run_slots(self) -> ExitCode:
        """N slots, each on a thread of its own; the main thread waits for shutdown, then drains them."""
        from .slots import SlotGroup  # only Managed Instances pay for it

        assert self.make_api is not None, "several slots need a Runtime API client each"
        self._group = group = SlotGroup(self.config, self.api, self.make_api, self.factory, self.children,
                                        self.soft_timeout, self._shutdown_read, self.shutdown_requested)
        self._idle_reaper.sweep = group.sweep_exited
        group.start_workers()
        with self._idle_reaper.idle():  # each slot's own lock keeps a sweep off the workers in use
            code, failure = group.run_until_shutdown(self._request_shutdown)
        if failure is not None:
            return self._init_failed(failure)
        return code

    def _init_failed(self, failure: WorkerInitFailed) -> ExitCode:
        error = failure.error
        emit("init_failed", "init failed", level="ERROR", error_type=error["errorType"],
             message=error["errorMessage"])
        try:
            self.api.post_init_error(error)
        except RuntimeApiUnavailable as problem:
            emit("init_error_unreported", "could not report the init error", level="ERROR", error=str(problem))
        return ExitCode.INIT_FAILED

    def _request_shutdown(self) -> None:
        """Ask every slot to stop (from the main thread): what the signal handler does, minus the signal."""
        self._shutdown_requested = True
        with contextlib.suppress(BlockingIOError):  # full: a byte is there already
            os.write(self._shutdown_write, b"x")

    def _install_signal_handlers(self) -> None:
        def request_shutdown(signum: int, _frame: FrameType | None) -> None:
            emit("shutdown_requested", "shutdown requested", level="DEBUG", signal=signal_name(signum))
            self._request_shutdown()
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

    def _idle_in_next(self) -> _LongPoll:
        return self._long_poll

    def _reap_exited(self) -> None:
        """Reap workers and adopted orphans that exited, so that no zombie lingers between invocations (while the
        loop is idle in ``next``, the idle reaper does this on every SIGCHLD). A dead worker is replaced when the
        next event comes (``died-while-idle``). With no SIGCHLD since the last sweep, there is nothing to sweep."""
        count = self.children.signal_count
        if count is None or count != self._swept_at_signal_count:
            self._sweep_exited()

    def _sweep_exited(self) -> None:
        count = self.children.signal_count  # read before the sweep: a child exiting during it changes the count
        workers = [worker for worker in (self.slot.worker, *self.factory.reserves()) if worker is not None]
        for worker in workers:
            if worker.has_exited():
                worker.kill()  # reaps it (and SIGKILLs whatever is left of its process group)
        self.children.reap_exited_orphans(keep={worker.pid for worker in workers})
        # whatever a dead worker (active, standby or template) left behind dies with it, escaped or not
        self.children.kill_orphans()
        self._swept_at_signal_count = count

    def _stop_workers(self) -> None:
        self.factory.close(self.config.shutdown_grace_ms / 1000)
        if self._group is not None:
            self._group.stop_workers()
        else:
            self.slot.stop_worker()
        self.children.kill_orphans()


class _LongPoll:
    """The one slot's long poll: the idle reaper may sweep, and a SIGTERM ends the poll. A class, not a generator
    (``contextlib.contextmanager``): it is entered on every invocation's path."""

    __slots__ = ("_supervisor",)

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def __enter__(self) -> None:
        supervisor = self._supervisor
        supervisor._idle_reaper.__enter__()
        supervisor._idle = True  # last: a SIGTERM raises in the block only from here on

    def __exit__(self, *_exc: object) -> None:
        supervisor = self._supervisor
        supervisor._idle = False
        supervisor._idle_reaper.__exit__()
