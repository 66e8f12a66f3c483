"""Moving the CPU hand-off's home off a CPU something else keeps busy (supervisor/cpu_home.py), and the worker
following it (worker/cpu_affinity.py): the decision on /proc figures, the look's timing, and real affinity calls
made in threads of this process (``sched_setaffinity(0, ...)`` changes only the calling thread)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
import test_loop_inprocess
from test_loop_inprocess import FakeFactory, FakeRuntimeApi, FakeWorker, Journal, run

from lambda_supervisor.shared.cpu_handoff import CpuHandoff
from lambda_supervisor.shared.protocol import Frame, FrameDecoder, InvalidMessage, InvokeMessage
from lambda_supervisor.supervisor import cpu_home, slot
from lambda_supervisor.supervisor.cpu_home import HomeCpu, better_home, parse_proc_stat
from lambda_supervisor.supervisor.process_tree import cpu_ticks, parent_pid
from lambda_supervisor.worker.cpu_affinity import MainThreadCpu

TWO = frozenset({0, 1})
#: The in-process loop's fixture: it also restores the signal handlers run() installs.
journal = test_loop_inprocess.journal
PROC_STAT = (b"cpu  300 0 200 900 10 0 5 0 0 0\n"
             b"cpu0 100 0 100 700 10 0 0 0 0 0\n"
             b"cpu1 200 0 100 200 0 0 5 0 0 0\n"
             b"intr 12345 0 0\nctxt 999\nbtime 1700000000\n")


def decode_frame(data: bytes) -> Frame:
    (frame,) = FrameDecoder().feed(data)
    return frame


def ticks(**busy_and_total: tuple[int, int]) -> dict[int, tuple[int, int]]:
    return {int(name[3:]): value for name, value in busy_and_total.items()}


def test_proc_stat_gives_busy_and_all_ticks_per_cpu() -> None:
    # busy: all but idle (4th) and iowait (5th); the "cpu" total line and the other lines are not CPUs
    assert parse_proc_stat(PROC_STAT) == {0: (200, 910), 1: (305, 505)}


def test_cpu_ticks_read_past_a_command_with_spaces_and_parentheses() -> None:
    """A process may name itself anything (its /proc comm): the fields are found after the name's last ")"."""
    named = subprocess.Popen([sys.executable, "-c", "open('/proc/self/comm', 'w').write('a (b) c)');"
                              "import sys; sys.stdout.write('named\\n'); sys.stdout.flush(); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert named.stdout is not None and named.stdout.readline() == b"named\n"
        with open(f"/proc/{named.pid}/stat", "rb") as stat:
            assert stat.read().startswith(f"{named.pid} (a (b) c)) ".encode())
        assert parent_pid(named.pid) == os.getpid()
        ticks = cpu_ticks(named.pid)
        assert ticks is not None and ticks >= 0
    finally:
        named.communicate(b"")
    assert cpu_ticks(named.pid) is None  # reaped: gone


def test_cpu_ticks_agree_with_the_kernels_count_for_this_process() -> None:
    before = os.times()
    ticks = cpu_ticks(os.getpid())
    after = os.times()
    per_s = os.sysconf("SC_CLK_TCK")
    assert ticks is not None
    # user and system time are each rounded to a tick: their sum may be off by two
    assert (before.user + before.system) * per_s - 2 <= ticks <= (after.user + after.system) * per_s + 2


def test_a_home_that_others_keep_busy_moves_to_the_idle_cpu() -> None:
    before = ticks(cpu0=(0, 0), cpu1=(0, 0))
    after = ticks(cpu0=(40, 100), cpu1=(100, 100))  # a busy loop on the home, CPU 0 60 % idle
    assert better_home(1, TWO, before, after, own_ticks=30) == 0


def test_the_home_stays_when_its_load_is_our_own() -> None:
    """The supervisor's and the worker's own ticks never count as someone else's: a handler that keeps the home
    busy must not chase itself from CPU to CPU."""
    before = ticks(cpu0=(0, 0), cpu1=(0, 0))
    after = ticks(cpu0=(10, 100), cpu1=(100, 100))
    assert better_home(1, TWO, before, after, own_ticks=60) is None


def test_the_home_stays_when_no_other_cpu_is_idle_enough() -> None:
    before = ticks(cpu0=(0, 0), cpu1=(0, 0))
    assert better_home(1, TWO, before, ticks(cpu0=(80, 100), cpu1=(100, 100)), own_ticks=0) is None  # 20 % idle
    assert better_home(1, TWO, before, ticks(cpu0=(75, 100), cpu1=(100, 100)), own_ticks=0) == 0  # 25 %


def test_the_most_idle_cpu_is_chosen_and_the_lowest_of_equals() -> None:
    cpus = frozenset({0, 1, 2, 3})
    before = ticks(cpu0=(0, 0), cpu1=(0, 0), cpu2=(0, 0), cpu3=(0, 0))
    after = ticks(cpu0=(50, 100), cpu1=(10, 100), cpu2=(10, 100), cpu3=(100, 100))
    assert better_home(3, cpus, before, after, own_ticks=0) == 1


def test_nothing_is_decided_on_missing_or_empty_figures() -> None:
    assert better_home(1, TWO, {}, ticks(cpu0=(0, 100), cpu1=(100, 100)), own_ticks=0) is None
    assert better_home(1, TWO, ticks(cpu1=(0, 0)), ticks(cpu1=(100, 100)), own_ticks=0) is None  # no other CPU
    assert better_home(1, TWO, ticks(cpu0=(5, 5), cpu1=(5, 5)), ticks(cpu0=(5, 5), cpu1=(5, 5)), own_ticks=0) is None


class Looks:
    """HomeCpu.look with the decision and the pinning recorded, not made (this is pytest's own thread)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, decision: int | None = 0) -> None:
        self.decisions: list[tuple[int, int]] = []
        self.pinned: list[set[int]] = []  # the calling thread's (pid 0)
        self.reserves_pinned: list[tuple[int, set[int]]] = []

        def decide(home: int, cpus: frozenset[int], before: Any, after: Any, own_ticks: int) -> int | None:
            self.decisions.append((home, own_ticks))
            return decision

        monkeypatch.setattr(cpu_home, "better_home", decide)
        def pin(pid: int, cpus: set[int]) -> None:
            if pid == 0:
                self.pinned.append(set(cpus))
            else:
                self.reserves_pinned.append((pid, set(cpus)))

        monkeypatch.setattr(cpu_home.os, "sched_setaffinity", pin)


def test_a_look_decides_only_against_a_recent_baseline_and_not_right_after_a_move(
        monkeypatch: pytest.MonkeyPatch) -> None:
    looks = Looks(monkeypatch)
    home = HomeCpu(CpuHandoff(home=1, cpus=TWO))
    me = os.getpid()  # any live process serves as "the worker": its ticks are read from /proc
    reserves = lambda: [4242]  # noqa: E731 - a standby's or template's pid
    assert home.look(100.0, me, reserves) is None and looks.decisions == []  # the first look is the baseline
    assert home.look(100.0 + cpu_home.LOOK_S / 2, me, reserves) is None and looks.decisions == []  # too soon
    assert looks.reserves_pinned == []  # not moved: the reserves stay where they were started
    moved_at = 100.0 + cpu_home.LOOK_S
    assert home.look(moved_at, me, reserves) == (1, 0)
    assert looks.pinned == [{0}] and home.home == 0 and home.moved
    assert looks.reserves_pinned == [(4242, {0})]
    now, looks_since = moved_at, 1
    while now + cpu_home.LOOK_S < moved_at + cpu_home.SETTLE_S:  # settling after the move: looks, no decision
        now += cpu_home.LOOK_S
        looks_since += 1
        assert home.look(now, me, reserves) is None and len(looks.decisions) == 1
    now += cpu_home.LOOK_S * 1.5  # past the settling, within a recent baseline
    assert now >= moved_at + cpu_home.SETTLE_S
    assert home.look(now, me, reserves) is None and len(looks.decisions) == 2  # decided: to where it already is
    looks_since += 1
    # every look since the move moved the reserves too: one started meanwhile pins itself where it was told
    assert looks.reserves_pinned == [(4242, {0})] * looks_since
    stale = now + cpu_home.STALE_S + 1  # nothing came for a while: a new baseline, no decision
    assert home.look(stale, me, reserves) is None and len(looks.decisions) == 2
    # a new worker: its ticks start a new baseline too
    assert home.look(stale + cpu_home.LOOK_S, os.getppid(), reserves) is None and len(looks.decisions) == 2


def test_a_look_that_finds_no_worker_decides_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    looks = Looks(monkeypatch)
    home = HomeCpu(CpuHandoff(home=1, cpus=TWO))
    gone = 2 ** 22 + 12345  # above any pid this kernel hands out
    assert home.look(1.0, gone, list) is None and home.look(1.0 + cpu_home.LOOK_S, gone, list) is None
    assert looks.decisions == [] and not home.moved


def in_a_thread(work: Callable[[], Any]) -> Any:
    """``work()`` in a thread of its own: its affinity calls change that thread only."""
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(work()))
    thread.start()
    thread.join(10)
    return results[0]


CPUS = frozenset(os.sched_getaffinity(0))
needs_two_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="one CPU: the hand-off pins nothing")


@needs_two_cpus
def test_the_worker_waits_where_the_event_says_once_the_home_moved() -> None:
    plan = CpuHandoff(home=max(CPUS), cpus=CPUS)
    moved_to = min(CPUS)

    def masks() -> list[set[int]]:
        cpu = MainThreadCpu(plan)
        seen = []
        cpu.settle()  # before the first event: the home it was started with
        seen.append(os.sched_getaffinity(0))
        cpu.release()
        cpu.settle(moved_to)  # the reply to an event that named a new home
        seen.append(os.sched_getaffinity(0))
        cpu.settle()  # waiting for the next event: still there
        seen.append(os.sched_getaffinity(0))
        cpu.release()
        cpu.settle(10_000)  # a CPU the worker was not given: ignored
        seen.append(os.sched_getaffinity(0))
        return seen

    assert in_a_thread(masks) == [{plan.home}, {moved_to}, {moved_to}, {moved_to}]


def test_the_home_crosses_the_pipe_only_when_given_and_only_as_a_cpu_number() -> None:
    plain = InvokeMessage("req", 123)
    assert InvokeMessage.parse(decode_frame(plain.encode(b"{}"))).home_cpu is None
    assert b"home_cpu" not in plain.encode(b"{}")
    moved = plain._replace(home_cpu=0)
    assert InvokeMessage.parse(decode_frame(moved.encode(b"{}"))).home_cpu == 0
    for bad in (-1, "0", 1.5, True):
        with pytest.raises(InvalidMessage):
            InvokeMessage.parse(decode_frame(plain._replace(home_cpu=bad).encode(b"{}")))  # type: ignore[arg-type]


class LivePidFactory(FakeFactory):
    """Fake workers whose pid is this process's, so that their CPU ticks can be read from /proc."""

    cpu_handoff = CpuHandoff(home=1, cpus=TWO)

    def _make(self) -> FakeWorker:
        worker = super()._make()
        worker.pid = os.getpid()
        return worker

    def reserves(self) -> list[FakeWorker]:
        standby = FakeWorker("standby", [], [])
        standby.pid = 4242
        return [standby]


def test_the_slot_moves_its_home_while_a_post_is_in_flight_and_the_next_event_names_it(
        journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    looks = Looks(monkeypatch)  # every decision: CPU 0; the supervisor's own pinning is recorded too
    monkeypatch.setattr(cpu_home, "LOOK_S", 0.0)
    moves: list[dict[str, Any]] = []
    monkeypatch.setattr(slot, "emit", lambda event, message, /, **fields: moves.append(fields)
                        if event == "cpu_home_moved" else None)
    factory = LivePidFactory(journal)
    run(journal, FakeRuntimeApi(journal, ["a", "b", "c"]), factory)
    # a: the first post sets the baseline; b: its post moves the home; c: the event names it
    assert factory.workers[0].homes == [None, None, 0]
    assert looks.pinned == [{1}, {0}]  # the home the supervisor started on, then the move
    assert looks.reserves_pinned[0] == (4242, {0})  # the standby follows, at every look from then on
    assert moves == [{"level": "INFO", "from_cpu": 1, "to_cpu": 0}]


def test_without_a_hand_off_the_slot_never_looks(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    looks = Looks(monkeypatch)
    factory = FakeFactory(journal)  # cpu_handoff None: one CPU, sharing off, or several slots
    run(journal, FakeRuntimeApi(journal, ["a", "b", "c"]), factory)
    assert looks.decisions == [] and factory.workers[0].homes == [None, None, None]


class Reserve:
    """A standby or template as _stop_reserve sees it."""

    def __init__(self, calls: list[tuple[Any, ...]], exited: bool = False) -> None:
        self.pid, self.exited, self.calls = 4242, exited, calls

    def has_exited(self) -> bool:
        return self.exited

    def terminate(self, grace_s: float) -> None:
        self.calls.append(("terminate", grace_s))


@pytest.mark.parametrize("exited", [False, True])
def test_a_reserve_is_stopped_at_normal_priority(monkeypatch: pytest.MonkeyPatch, exited: bool) -> None:
    """Left at idle priority beside a busy loop on the hand-off's old home, a template barely ran even to exit, and
    the supervisor's shutdown waited for it (a 30 s hang in a suite run with a CPU hog)."""
    from lambda_supervisor.supervisor import priority, respawn

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(priority, "restore_normal", lambda pid: calls.append(("normal", pid)) or True)
    respawn._stop_reserve(Reserve(calls, exited), 0.5)  # type: ignore[arg-type]
    assert calls == ([] if exited else [("normal", 4242)]) + [("terminate", 0.5)]
