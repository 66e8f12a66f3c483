"""N slots on N threads, for Lambda Managed Instances (``AWS_LAMBDA_MAX_CONCURRENCY``).

Each slot (slot.py) runs today's per-invocation loop on a thread of its own, with its own Runtime API connection,
``next`` long poll and worker: a slot's work between two waits is small, and every wait (the long poll, the worker's
pipe) releases the GIL. The slots share where workers come from (one fork template, or the strategy's reserves),
behind one lock: the children's (process_tree.py), so that no hunt for orphans takes a worker being made for one
slot for another's leftover. Signals stay on the main thread, which waits for shutdown (or a slot's end) and then
drains: no slot sends another ``next``, those idle in one have it cut, in-flight requests finish within the
shutdown grace, and each slot stops its own worker.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable, Iterator, Sequence

from lambda_supervisor.shared.cpu_handoff import CpuHandoff

from .config import Config
from .events import emit
from .exit_codes import ExitCode
from .process_tree import Children
from .runtime_api import RuntimeApiClient, RuntimeApiUnavailable
from .signal_mask import handled_signals_blocked
from .slot import ShutdownRequested, Slot, SlotHooks
from .soft_timeout import SoftTimeout
from .worker_process import WorkerInitFailed, WorkerWaitInterrupted

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's
if TYPE_CHECKING:
    from .worker_handle import Worker, WorkerSource

#: After shutdown, how long the main thread waits for a slot's thread beyond the grace and a post's retries.
JOIN_MARGIN_S = 5.0
#: How long the main thread's wait for shutdown lasts before it looks again (see _wait_for_shutdown_or_an_end).
SHUTDOWN_RECHECK_MS = 1000


class LockedSource:
    """A worker source shared by several slot threads: one call at a time, under the children's lock."""

    def __init__(self, source: WorkerSource, lock: threading.RLock) -> None:
        self._source = source
        self._lock = lock

    @property
    def strategy(self) -> str:
        return self._source.strategy

    @strategy.setter
    def strategy(self, strategy: str) -> None:
        self._source.strategy = strategy

    @property
    def cpu_handoff(self) -> CpuHandoff | None:
        return self._source.cpu_handoff

    @cpu_handoff.setter
    def cpu_handoff(self, handoff: CpuHandoff | None) -> None:
        self._source.cpu_handoff = handoff

    @property
    def interrupt_fd(self) -> int | None:
        return self._source.interrupt_fd

    @interrupt_fd.setter
    def interrupt_fd(self, fd: int | None) -> None:
        self._source.interrupt_fd = fd

    def start_many(self, count: int) -> Sequence[Worker]:
        with self._lock:
            return self._source.start_many(count)

    def start(self) -> Worker:
        with self._lock:
            return self._source.start()

    def replace(self) -> Worker:
        with self._lock:
            return self._source.replace()

    def maintain(self) -> None:
        with self._lock:
            self._source.maintain()

    def upkeep_due(self) -> bool:
        with self._lock:
            return self._source.upkeep_due()

    def reserves(self) -> Sequence[Worker]:
        with self._lock:
            return list(self._source.reserves())

    def close(self, grace_s: float) -> None:
        with self._lock:
            self._source.close(grace_s)


class SlotGroup:
    """The slots, their threads, and the drain at shutdown. Slot 0 uses the supervisor's own client."""

    def __init__(self, config: Config, api: RuntimeApiClient, make_api: Callable[[], RuntimeApiClient],
                 factory: WorkerSource, children: Children, soft_timeout: SoftTimeout, shutdown_fd: int,
                 shutdown_requested: Callable[[], bool]) -> None:
        self.config = config
        self.factory = factory
        self.children = children
        self._shutdown_requested = shutdown_requested
        self._lock = threading.Lock()  # guards which slots are polling, and keeps a sweep off their workers
        self._polling: set[int] = set()
        self._closing = False
        self._swept_at: dict[int, int | None] = {}
        self._ended: dict[int, BaseException | None] = {}
        self._done_read, self._done_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        source = LockedSource(factory, children.lock)
        count = config.concurrency
        self.slots = [
            Slot(config, api if index == 0 else make_api(), source, children, soft_timeout,
                 SlotHooks(shutdown_requested, shutdown_fd, self._reaper(index), self._idle(index)),
                 index=index, count=count)
            for index in range(count)
        ]

    # -- starting -----------------------------------------------------------------------------------------------

    def start_workers(self) -> None:
        """Every slot's first worker, at cold start (one init under ``fork``; overlapping inits otherwise)."""
        with self.children.lock:
            workers = self.factory.start_many(len(self.slots))
        for slot, worker in zip(self.slots, workers, strict=True):
            slot.take_worker(worker)

    def run_until_shutdown(self, request_shutdown: Callable[[], None]) -> tuple[ExitCode, WorkerInitFailed | None]:
        """Run every slot on its thread until shutdown is requested or one slot ends on its own (the Runtime API
        gone, a replacement that never passes init); then drain them all. Returns the exit code, or the init
        failure to report."""
        threads = [threading.Thread(target=self._run_slot, args=(slot,), name=f"slot-{slot.index}", daemon=True)
                   for slot in self.slots]
        with handled_signals_blocked():  # SIGTERM must reach the main thread, which waits for it below
            for thread in threads:
                thread.start()
        emit("slots_ready", "slots serving", level="DEBUG", slots=len(self.slots), strategy=self.factory.strategy)
        self._wait_for_shutdown_or_an_end()
        request_shutdown()
        self._stop_polling()
        join_s = self.config.shutdown_grace_ms / 1000 + self.config.api_retry_s + JOIN_MARGIN_S
        for thread in threads:
            thread.join(join_s)
        os.close(self._done_read)
        os.close(self._done_write)
        return self._verdict()

    def _wait_for_shutdown_or_an_end(self) -> None:
        """Until SIGTERM's handler has run or a slot has ended. The handler's pipe ends the wait; the wait also ends
        every SHUTDOWN_RECHECK_MS, as gunicorn's arbiter does, so that a SIGTERM whose handler the interpreter has
        not run yet is handled within a second: under load, one sent to this thread as it waited was seen only when
        something else woke it (README, "Since 23:47")."""
        poller = select.poll()
        poller.register(self.slots[0].hooks.shutdown_fd, select.POLLIN)
        poller.register(self._done_read, select.POLLIN)
        while not self._shutdown_requested() and not self._ended:
            poller.poll(SHUTDOWN_RECHECK_MS)

    def _verdict(self) -> tuple[ExitCode, WorkerInitFailed | None]:
        """What the slots that ended on their own ended with: the first init failure is reported (once: Lambda
        takes one init error), else the Runtime API being gone; a bug is raised again."""
        errors = [error for error in self._ended.values() if error is not None]
        for error in errors:
            if isinstance(error, WorkerInitFailed):
                return ExitCode.INIT_FAILED, error
        for error in errors:
            if isinstance(error, RuntimeApiUnavailable):
                emit("runtime_api_gone", "runtime api gone, exiting", level="ERROR", error=str(error))
                return ExitCode.RUNTIME_API_GONE, None
        if errors:
            raise errors[0]
        return ExitCode.OK, None

    # -- one slot's thread --------------------------------------------------------------------------------------

    def _run_slot(self, slot: Slot) -> None:
        ended: BaseException | None = None
        try:
            slot.serve_until_shutdown()
        except (ShutdownRequested, WorkerWaitInterrupted):
            pass
        except RuntimeApiUnavailable as error:
            ended = None if self._shutdown_requested() else error
        except BaseException as error:  # a bug, or a replacement that never passed init: the whole runtime ends
            ended = error
            if not isinstance(error, WorkerInitFailed):
                emit("slot_failed", "slot ended on an unexpected error", level="ERROR", slot=slot.index,
                     error=repr(error))
        finally:
            slot.stop_worker()  # each slot its own, so that the workers' shutdown graces overlap
            self._ended[slot.index] = ended
            with contextlib.suppress(OSError):
                os.write(self._done_write, b"d")

    @contextlib.contextmanager
    def _idle_block(self, index: int) -> Iterator[None]:
        with self._lock:
            if self._closing:
                raise ShutdownRequested
            self._polling.add(index)
        try:
            yield
        finally:
            with self._lock:  # waits for a sweep of this slot's worker under way
                self._polling.discard(index)

    def _idle(self, index: int) -> Callable[[], contextlib.AbstractContextManager[None]]:
        return lambda: self._idle_block(index)

    def _reaper(self, index: int) -> Callable[[], None]:
        return lambda: self._reap_slot(index)

    def _stop_polling(self) -> None:
        """No slot polls again; the long polls under way are cut (a slot whose event just arrived still posts)."""
        with self._lock:
            self._closing = True
            polling = [self.slots[index] for index in self._polling]
        for slot in polling:
            slot.api.stop_polling()

    # -- reaping ------------------------------------------------------------------------------------------------

    def _reap_slot(self, index: int) -> None:
        """Before a slot polls: reap its worker if it exited, and the orphans, if a child exited since it last
        looked. Orphans only when no worker is being made (the lock is free): the next look gets them."""
        count = self.children.signal_count
        if count is not None and self._swept_at.get(index) == count:
            return
        worker = self.slots[index].worker
        if worker is not None and worker.has_exited():
            worker.kill()  # reaps it; the slot replaces it when its next event comes (died-while-idle)
        self._sweep_orphans()
        self._swept_at[index] = count

    def sweep_exited(self) -> None:
        """On a SIGCHLD (the idle reaper's thread): reap the exited workers of the slots idle in ``next`` (their
        threads wait for this to end before they touch them), then the orphans."""
        with self._lock:
            for index in self._polling:
                worker = self.slots[index].worker
                if worker is not None and worker.has_exited():
                    worker.kill()
        self._sweep_orphans()

    def _sweep_orphans(self) -> None:
        if not self.children.lock.acquire(blocking=False):
            return
        try:
            self.children.reap_exited_orphans(keep=set(self.children.workers))
            self.children.kill_orphans()
        finally:
            self.children.lock.release()

    def stop_workers(self) -> None:
        """After the drain: stop whatever a slot whose thread did not end left running."""
        for slot in self.slots:
            slot.stop_worker()
