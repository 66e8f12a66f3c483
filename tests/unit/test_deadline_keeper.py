"""The emulator's deadline keeper on its own: one thread that expires what is armed and not cancelled, in order,
and outlives an expiry that fails. Waits are on events; the only time that passes is the deadlines' own."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from lambda_supervisor.local.emulator.deadlines import DeadlineKeeper

WAIT_S = 10.0


class Expiries:
    """What the keeper expired, in order, with an event per request id."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.order: list[str] = []
        self.events: dict[str, threading.Event] = {}
        self.fail_on = fail_on
        self.thread_names: set[str] = set()

    def event(self, request_id: str) -> threading.Event:
        return self.events.setdefault(request_id, threading.Event())

    def __call__(self, request_id: str) -> None:
        self.order.append(request_id)
        self.thread_names.add(threading.current_thread().name)
        self.event(request_id).set()
        if request_id == self.fail_on:
            raise RuntimeError("an expiry that fails")


@pytest.fixture
def lock() -> threading.RLock:
    return threading.RLock()


@contextlib.contextmanager
def running_keeper(lock: threading.RLock, expiries: Expiries) -> Iterator[DeadlineKeeper]:
    keeper = DeadlineKeeper(lock, expiries)
    keeper.start()
    try:
        yield keeper
    finally:
        keeper.stop()


def _arm(keeper: DeadlineKeeper, lock: threading.RLock, request_id: str, in_s: float) -> None:
    with lock:
        keeper.arm_locked(request_id, time.monotonic() + in_s)


def test_deadlines_expire_in_order_and_a_cancelled_one_never(lock: threading.RLock) -> None:
    expiries = Expiries()
    with running_keeper(lock, expiries) as keeper:
        _arm(keeper, lock, "late", 0.3)
        _arm(keeper, lock, "cancelled", 0.05)
        _arm(keeper, lock, "early", 0.1)  # earlier than the keeper's next look: it must wake for it
        with lock:
            keeper.cancel_locked("cancelled")
        assert expiries.event("late").wait(WAIT_S)
        assert expiries.order == ["early", "late"]
        assert expiries.thread_names == {"emulator-deadlines"}


def test_an_earlier_deadline_armed_while_the_keeper_sleeps_wakes_it(lock: threading.RLock) -> None:
    """The keeper sleeps until the earliest deadline it knows (an hour away here): one armed sooner must not wait."""
    expiries = Expiries()
    with running_keeper(lock, expiries) as keeper:
        _arm(keeper, lock, "in-an-hour", 3600.0)
        started = time.monotonic()
        _arm(keeper, lock, "soon", 0.05)
        assert expiries.event("soon").wait(WAIT_S)
        assert time.monotonic() - started < WAIT_S and expiries.order == ["soon"]


def test_the_keeper_outlives_an_expiry_that_fails(lock: threading.RLock) -> None:
    expiries = Expiries(fail_on="first")
    with running_keeper(lock, expiries) as keeper:
        _arm(keeper, lock, "first", 0.01)
        assert expiries.event("first").wait(WAIT_S)
        _arm(keeper, lock, "second", 0.01)
        assert expiries.event("second").wait(WAIT_S)
        assert expiries.order == ["first", "second"]


def test_stop_ends_the_thread_and_forgets_what_was_armed(lock: threading.RLock) -> None:
    expiries = Expiries()
    keeper = DeadlineKeeper(lock, expiries)
    before = set(threading.enumerate())
    keeper.start()
    (thread,) = set(threading.enumerate()) - before
    _arm(keeper, lock, "never", 0.2)
    keeper.stop()
    assert thread.name == "emulator-deadlines" and not thread.is_alive()
    assert not expiries.event("never").wait(0.4)  # past its deadline: the stopped keeper expired nothing
    assert expiries.order == []
