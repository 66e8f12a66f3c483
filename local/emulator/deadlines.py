"""The deadlines of the invocations handed out and not answered yet, watched by one thread for the whole emulator.

A ``threading.Timer`` per invocation (as before) started a thread at every hand-out, while the runtime waited for
its event: ~350 us of a no-op cycle of ~750 us on a 2-vCPU machine, half of the emulator's cost (README, "Since
05:29"). The keeper sleeps until the earliest deadline; arming one that is later than that wakes nobody, and a
cancelled one is simply forgotten, so the steady state costs a dict assignment and a deletion per invocation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from loguru import logger


class DeadlineKeeper:
    """Calls ``on_expire(request_id)`` (outside the lock, from its own thread) once a deadline armed with
    :meth:`arm_locked` passes without :meth:`cancel_locked`. ``lock`` is the emulator's: the ``_locked`` methods are
    called with it held, as the emulator's own ``_locked`` methods are."""

    def __init__(self, lock: threading.RLock, on_expire: Callable[[str], None]) -> None:
        self._cond = threading.Condition(lock)
        self._on_expire = on_expire
        self._due: dict[str, float] = {}  # request id -> time.monotonic() deadline
        self._wakes_at: float | None = None  # when the sleeping keeper looks next (None: only when notified)
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="emulator-deadlines", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Forget every deadline and end the thread (call without the lock held)."""
        with self._cond:
            self._stopped = True
            self._due.clear()
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def arm_locked(self, request_id: str, at_monotonic: float) -> None:
        self._due[request_id] = at_monotonic
        if self._wakes_at is None or at_monotonic < self._wakes_at:
            self._cond.notify()

    def cancel_locked(self, request_id: str) -> None:
        self._due.pop(request_id, None)  # a wake-up it was the reason for finds nothing due, and sleeps again

    def _run(self) -> None:
        while (expired := self._wait_for_expiry()) is not None:
            for request_id in expired:
                try:
                    self._on_expire(request_id)
                except Exception:  # the keeper must outlive one bad expiry: every later deadline depends on it
                    logger.exception("expiring invocation {} failed", request_id)

    def _wait_for_expiry(self) -> list[str] | None:
        """The request ids whose deadline has passed, removed; None once stopped."""
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                expired = [request_id for request_id, at in self._due.items() if at <= now]
                if expired:
                    for request_id in expired:
                        del self._due[request_id]
                    self._wakes_at = None  # awake: an arm meanwhile needs no notify, the next look sees it
                    return expired
                self._wakes_at = min(self._due.values(), default=None)
                self._cond.wait(None if self._wakes_at is None else self._wakes_at - now)
            return None
