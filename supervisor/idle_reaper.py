"""Reaping children that exit while the loop waits for an event, on a thread of its own.

Between two invocations the main thread blocks in the Runtime API's long poll for as long as no event comes. A
worker (or whatever a dead one left behind) that exits meanwhile must not linger as a zombie until then, so a thread
woken by every SIGCHLD sweeps while the loop is idle. The SIGCHLD handler only counts the signal
(:meth:`.process_tree.Children.count_signal`); a lock keeps a sweep and the loop's own use of its workers apart.
"""

from __future__ import annotations

from _thread import LockType, allocate_lock, start_new_thread  # threading's import costs every start
from collections.abc import Callable

from .events import emit
from .process_tree import Children
from .signal_mask import handled_signals_blocked

#: How long a stop waits for a sweep under way.
STOP_WAIT_S = 5.0


class IdleReaper:
    def __init__(self, children: Children, sweep: Callable[[], None]) -> None:
        self._children = children
        self.sweep = sweep  # replaceable before the first sweep (several slots sweep their own way)
        self._lock = allocate_lock()
        self._idle = False
        self._stopping = False
        self._running: LockType | None = None  # held while the thread runs (a daemon: exit does not wait for it)

    def start(self) -> None:
        self._running = running = allocate_lock()
        running.acquire()
        with handled_signals_blocked():
            start_new_thread(self._run_until_stopped, (running,))

    def idle(self) -> IdleReaper:
        """``with reaper.idle():`` while in this block the loop does not touch its workers, and the thread may sweep.
        Leaving it waits for a sweep under way. The reaper is its own context manager: it is entered on every
        invocation's path, where a generator-based one costs more (README, "Since 21:53")."""
        return self

    def __enter__(self) -> None:
        with self._lock:
            self._idle = True

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._idle = False

    def stop(self) -> None:
        """End the thread, after the sweep under way if any."""
        self._stopping = True
        self._children.wake()
        if self._running is not None:
            if self._running.acquire(timeout=STOP_WAIT_S):
                self._running.release()
            self._running = None

    def _run_until_stopped(self, running: LockType) -> None:
        try:
            self._run()
        finally:
            running.release()

    def _run(self) -> None:
        while not self._stopping:
            self._children.wait_for_signal()
            with self._lock:
                if self._idle and not self._stopping:
                    self._sweep_once()

    def _sweep_once(self) -> None:
        try:
            self.sweep()
        except Exception as error:  # the next SIGCHLD, or the loop before the next event, sweeps again
            emit("idle_sweep_failed", "reaping exited children while idle failed", level="WARNING", error=str(error))
