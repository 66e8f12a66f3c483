"""Several slots in-process: the loop of test_loop_inprocess.py on N threads, with a fake Runtime API that hands
events to concurrent polls and fake workers. These pin what concurrency adds: a fault stays in its slot, SIGTERM
drains (in-flight requests finish, no new ``next``), the memory budget kills the largest worker, and the slots'
recycling is staggered.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_loop_inprocess import OK, FakeWorker, InertChildren, Journal, crash

from lambda_supervisor.shared.errors import ErrorType, error_object
from lambda_supervisor.supervisor import loop as loop_module
from lambda_supervisor.supervisor import slot as slot_module
from lambda_supervisor.supervisor import slots as slots_module
from lambda_supervisor.supervisor.config import Config
from lambda_supervisor.supervisor.exit_codes import ExitCode
from lambda_supervisor.supervisor.http_connection import HttpConnection, PollInterrupted
from lambda_supervisor.supervisor.loop import Supervisor
from lambda_supervisor.supervisor.memory_budget import MemoryBudget
from lambda_supervisor.supervisor.outcome import Outcome, Response
from lambda_supervisor.supervisor.runtime_api import Invocation, PostResult, RuntimeApiUnavailable
from lambda_supervisor.supervisor.slot import Slot, SlotHooks
from lambda_supervisor.supervisor.slots import SlotGroup
from lambda_supervisor.supervisor.soft_timeout import SoftTimeout
from lambda_supervisor.supervisor.worker_process import WorkerInitFailed

Behaviour = Callable[[str, Callable[[], bool]], Outcome]


class SlotWorker(FakeWorker):
    """A fake worker whose answer depends on the request: ``behaviours[request_id](request_id, shutdown_requested)``
    (default: a response at once)."""

    def __init__(self, name: str, journal: Journal, behaviours: dict[str, Behaviour]) -> None:
        super().__init__(name, journal, [])
        self._behaviours = behaviours

    def invoke(self, invocation: Invocation, *, soft_timeout_ms: int = 0,
               shutdown_requested: Callable[[], bool] = lambda: False, home_cpu: int | None = None) -> Outcome:
        assert not self.exited, f"{self.name} was handed {invocation.request_id} after it exited"
        self.invocations += 1
        self._journal.append(("invoke", self.name, invocation.request_id))
        behaviour = self._behaviours.get(invocation.request_id)
        return behaviour(invocation.request_id, shutdown_requested) if behaviour else OK


class SlotFactory:
    strategy = "fake"
    cpu_handoff = None
    interrupt_fd: int | None = None

    def __init__(self, journal: Journal, behaviours: dict[str, Behaviour] | None = None) -> None:
        self.journal = journal
        self.behaviours = behaviours or {}
        self.workers: list[SlotWorker] = []
        self._lock = threading.Lock()

    def _make(self) -> SlotWorker:
        with self._lock:
            worker = SlotWorker(f"w{len(self.workers) + 1}", self.journal, self.behaviours)
            self.workers.append(worker)
            return worker

    def start(self) -> SlotWorker:
        return self._make()

    def start_many(self, count: int) -> list[SlotWorker]:
        return [self._make() for _ in range(count)]

    def replace(self) -> SlotWorker:
        worker = self._make()
        self.journal.append(("replacement", worker.name))
        return worker

    def maintain(self) -> None:
        pass

    def upkeep_due(self) -> bool:
        return False

    def reserves(self) -> list[SlotWorker]:
        return []

    def close(self, grace_s: float) -> None:
        pass


class SharedEvents:
    """The Runtime API as several slots see it: each has a client of its own, and each event goes to one poll.
    Once the events run out, a poll waits until its client is told to stop polling (the drain)."""

    def __init__(self, journal: Journal, events: list[str]) -> None:
        self.journal = journal
        self.events = list(events)
        self.cond = threading.Condition()
        self.polls = 0

    def client(self) -> SlotClient:
        return SlotClient(self)


class SlotClient:
    def __init__(self, shared: SharedEvents) -> None:
        self.shared = shared
        self.stopped = False

    def next_invocation(self) -> Invocation:
        shared = self.shared
        with shared.cond:
            shared.polls += 1
            shared.cond.notify_all()
            while not shared.events and not self.stopped:
                shared.cond.wait()
            if self.stopped:
                raise RuntimeApiUnavailable("polling stopped")
            request_id = shared.events.pop(0)
        return Invocation(request_id, int(time.time() * 1000) + 60_000, "arn:aws:lambda:fake", None, None, None,
                          b"{}", None, time.monotonic())

    def stop_polling(self) -> None:
        with self.shared.cond:
            self.stopped = True
            self.shared.cond.notify_all()

    def post_response(self, request_id: str, body: bytes, *, content_type: str = "",
                      meanwhile: Callable[[], None] | None = None, ask_next: bool = False) -> PostResult:
        return self._post(("response", request_id, body), meanwhile)

    def post_error(self, request_id: str, error: dict[str, Any], *, xray_cause: object = None,
                   meanwhile: Callable[[], None] | None = None, ask_next: bool = False) -> PostResult:
        return self._post(("error", request_id, error["errorType"]), meanwhile)

    def _post(self, entry: tuple[Any, ...], meanwhile: Callable[[], None] | None) -> PostResult:
        with self.shared.cond:
            self.shared.journal.append(entry)
            self.shared.cond.notify_all()
        if meanwhile is not None:
            meanwhile()
        return PostResult.ACCEPTED

    def post_init_error(self, error: dict[str, Any]) -> bool:
        self.shared.journal.append(("init_error", error["errorType"]))
        return True

    def close(self) -> None:
        pass


@pytest.fixture
def journal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Journal]:
    entries: Journal = []

    def record(event: str, message: str, /, *, level: str = "INFO", **fields: Any) -> None:
        if event == "worker_replaced":
            entries.append(("replaced", str(fields["reason"]), fields["request_id"], fields.get("slot")))

    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)}
    for module in (loop_module, slot_module, slots_module):
        monkeypatch.setattr(module, "emit", record)
    yield entries
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def config_for(slots: int, **settings: Any) -> Config:
    environ = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9", "_HANDLER": "app.handler",
               "LAMBDA_TASK_ROOT": str(Path(__file__).parent), "AWS_LAMBDA_MAX_CONCURRENCY": str(slots)}
    return Config.load(environ).replace(**settings)


def run_slots(journal: Journal, shared: SharedEvents, factory: SlotFactory, slots: int = 4,
              then: Callable[[], None] | None = None, **settings: Any) -> ExitCode:
    """Run the supervisor with ``slots`` slots on this (the main) thread; ``then`` runs on another thread and
    ends by sending SIGTERM."""
    config = config_for(slots, **settings)
    children = InertChildren()
    ours = signal.getsignal(signal.SIGTERM)

    def drive() -> None:
        try:
            if then is not None:
                then()
        finally:
            wait_until(lambda: signal.getsignal(signal.SIGTERM) is not ours, "the supervisor's signal handler")
            # to the main thread: in this test process the driver's own thread does not block it, and the kernel
            # may give a process-directed signal to any such thread (the supervisor's own threads block it)
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)

    driver = threading.Thread(target=drive, daemon=True)
    supervisor = Supervisor(config, shared.client(), {}, factory, children,  # type: ignore[arg-type]
                            make_api=shared.client)  # type: ignore[arg-type]
    if then is not None:
        driver.start()
    try:
        return supervisor.run()
    finally:
        if then is not None:
            driver.join(10)
        children.close()


def posts(journal: Journal) -> dict[str, list[tuple[Any, ...]]]:
    found: dict[str, list[tuple[Any, ...]]] = {}
    for entry in journal:
        if entry[0] in ("response", "error"):
            found.setdefault(entry[1], []).append(entry)
    return found


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + 20
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_a_crash_costs_only_its_own_slots_request_and_only_its_slot_gets_a_new_worker(journal: Journal) -> None:
    shared = SharedEvents(journal, ["a", "b", "c", "d"])
    factory = SlotFactory(journal, {"b": lambda request_id, _: crash(request_id)})
    code = run_slots(journal, shared, factory, then=lambda: wait_until(
        lambda: len(posts(journal)) == 4 and any(entry[0] == "replaced" for entry in journal), "4 posts, 1 respawn"))
    assert code is ExitCode.OK
    assert {request_id: [entry[0] for entry in entries] for request_id, entries in posts(journal).items()} == {
        "a": ["response"], "b": ["error"], "c": ["response"], "d": ["response"]}
    replaced = [entry for entry in journal if entry[0] == "replaced"]
    assert len(replaced) == 1 and replaced[0][1:3] == ("crash", "b") and replaced[0][3] in range(4), replaced
    crashed = next(entry[1] for entry in journal if entry[0] == "invoke" and entry[2] == "b")
    killed = [entry[1] for entry in journal if entry[0] == "kill"]
    assert killed == [crashed], "only the crashed slot's worker is killed"
    assert len(factory.workers) == 5  # four first workers, one replacement


def test_sigterm_lets_in_flight_requests_finish_and_sends_no_new_next(journal: Journal) -> None:
    in_flight = threading.Semaphore(0)

    def until_shutdown(request_id: str, shutdown_requested: Callable[[], bool]) -> Outcome:
        in_flight.release()
        wait_until(shutdown_requested, "the shutdown request")
        time.sleep(0.05)  # still working after SIGTERM: the drain waits for it
        return Response(b'"finished"')

    shared = SharedEvents(journal, ["a", "b", "c"])
    factory = SlotFactory(journal, dict.fromkeys(("a", "b", "c"), until_shutdown))
    polls_at_signal: list[int] = []

    def three_in_flight() -> None:
        for _ in range(3):
            assert in_flight.acquire(timeout=20)
        wait_until(lambda: shared.polls == 4, "the idle slot's poll")
        polls_at_signal.append(shared.polls)
        journal.append(("sigterm",))

    code = run_slots(journal, shared, factory, then=three_in_flight)
    assert code is ExitCode.OK
    assert {request_id: entries for request_id, entries in posts(journal).items()} == {
        request_id: [("response", request_id, b'"finished"')] for request_id in ("a", "b", "c")}
    assert shared.polls == polls_at_signal[0], "no slot polled again after SIGTERM"
    assert sorted(entry[1] for entry in journal if entry[0] == "terminate") == ["w1", "w2", "w3", "w4"]
    sigterm = journal.index(("sigterm",))
    assert all(journal.index(("terminate", name)) > sigterm for name in ("w1", "w2", "w3", "w4"))


def test_an_init_failure_with_several_slots_is_reported_once(journal: Journal) -> None:
    factory = SlotFactory(journal)

    def failing_start_many(count: int) -> list[SlotWorker]:
        raise WorkerInitFailed(error_object(ErrorType.IMPORT_MODULE, "No module named 'app'"))

    factory.start_many = failing_start_many  # type: ignore[method-assign]
    shared = SharedEvents(journal, ["a"])
    code = run_slots(journal, shared, factory)
    assert code is ExitCode.INIT_FAILED
    assert journal == [("init_error", "Runtime.ImportModuleError")]


def test_the_first_workers_recycling_is_staggered_across_slots() -> None:
    """Slot k's first worker recycles after (N - k) / N of the invocations and of the age; its later workers
    after all of them: the slots never all recycle at once."""
    config = config_for(4, max_invocations=8, max_worker_age_s=60.0)
    limits = []
    for index in range(4):
        hooks = SlotHooks(lambda: False, -1, lambda: None, lambda: None)  # type: ignore[arg-type,return-value]
        slot = Slot(config, None, SlotFactory([]), InertChildren(), SoftTimeout(0, {}), hooks,  # type: ignore[arg-type]
                    index=index, count=4)
        slot.take_worker(FakeWorker("first", [], []))
        first = (slot._invocation_limit, slot._age_limit_s)
        slot._adopt(FakeWorker("second", [], []))
        limits.append((first, (slot._invocation_limit, slot._age_limit_s)))
    assert [first for first, _ in limits] == [(8, 60.0), (6, 45.0), (4, 30.0), (2, 15.0)]
    assert all(later == (8, 60.0) for _, later in limits)


class Budget:
    """A MemoryBudget over scripted tree sizes (MB), recording whom it kills."""

    def __init__(self, sizes: dict[int, int], limit_mb: int) -> None:
        self.sizes = sizes
        self.killed: list[int] = []
        children = InertChildren()
        children.workers = set(sizes)
        mb = 2**20
        self.budget = MemoryBudget(limit_mb * mb, children, 0.0,
                                   measure=lambda pids: ({pid: self.sizes[pid] * mb for pid in pids},
                                                         lambda: {pid: self.sizes[pid] * mb for pid in pids}),
                                   kill=self.killed.append)


def test_over_the_total_the_largest_busy_worker_is_told_to_die_and_no_other() -> None:
    budget = Budget({1: 100, 2: 300, 3: 200, 9: 400}, limit_mb=900)  # 9: the template, which never serves
    for pid in (1, 2, 3):
        budget.budget.serving(pid, True)
    assert budget.budget.check(1) is None  # 1000 MB > 900 MB: 2 (300 MB) is the largest that serves
    assert budget.budget.check(3) is None
    verdict = budget.budget.check(2)
    assert verdict is not None and "held the most (300.0 MB)" in verdict
    assert budget.killed == []  # busy: it kills itself on its check, and its request gets the OOM error


def test_over_the_total_the_largest_idle_worker_is_killed_at_once() -> None:
    budget = Budget({1: 100, 2: 500, 3: 200}, limit_mb=700)
    for pid in (1, 2, 3):
        budget.budget.serving(pid, True)
    budget.budget.serving(2, False)  # 2 has served and is idle now
    assert budget.budget.check(1) is None
    assert budget.killed == [2]


def test_within_the_total_nobody_is_killed() -> None:
    budget = Budget({1: 100, 2: 300}, limit_mb=400)
    budget.budget.serving(1, True)
    budget.budget.serving(2, True)
    assert budget.budget.check(1) is None and budget.budget.check(2) is None
    assert budget.killed == []


def test_a_replacement_names_its_slot_as_a_metric_dimension_only_with_several_slots() -> None:
    from lambda_supervisor.supervisor.metrics import MetricsRecorder

    recorder = MetricsRecorder("LambdaSupervisor", "f")
    fields = {"reason": "crash", "request_id": "a", "ready_ms": 1.0}
    one = json.loads(recorder.observe("worker_replaced", fields))
    several = json.loads(recorder.observe("worker_replaced", {**fields, "slot": 2}))
    assert ["FunctionName", "Slot"] not in one["_aws"]["CloudWatchMetrics"][0]["Dimensions"] and "Slot" not in one
    assert ["FunctionName", "Slot"] in several["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert several["Slot"] == "2" and several["Reason"] == "crash"


def _long_poll_server(first: bytes, then: threading.Event, rest: bytes) -> tuple[socket.socket, threading.Thread]:
    """A server that answers one request with ``first``, and with ``rest`` once ``then`` is set."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(first)
            then.wait(10)
            with contextlib.suppress(OSError):
                connection.sendall(rest)
                connection.recv(1)  # until the client closes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def _interruptible(listener: socket.socket) -> HttpConnection:
    return HttpConnection("127.0.0.1", listener.getsockname()[1], connect_timeout_s=3, io_timeout_s=5,
                          user_agent="test", interruptible=True)


def test_an_interrupted_long_poll_whose_answer_has_not_begun_ends_at_once() -> None:
    later = threading.Event()
    listener, server = _long_poll_server(b"", later, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    connection = _interruptible(listener)
    threading.Timer(0.2, connection.interrupt).start()
    started = time.monotonic()
    with pytest.raises(PollInterrupted):
        connection.request("GET", "/next", long_poll=True)
    assert time.monotonic() - started < 5
    later.set()
    listener.close()
    server.join(5)


def test_an_interrupted_long_poll_whose_answer_has_begun_is_read_to_its_end() -> None:
    """An event already on its way is not lost at shutdown: it is read, served and posted."""
    interrupted = threading.Event()
    listener, server = _long_poll_server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", interrupted, b"cde")
    connection = _interruptible(listener)

    def interrupt_once_begun() -> None:
        time.sleep(0.2)
        connection.interrupt()
        interrupted.set()

    threading.Thread(target=interrupt_once_begun, daemon=True).start()
    response = connection.request("GET", "/next", long_poll=True)
    assert response.status == 200 and response.body == b"abcde"
    connection.close()
    listener.close()
    server.join(5)


class UnreapableWorker(SlotWorker):
    """A worker whose kill fails as a reap did when another thread had reaped its pid first."""

    def kill(self) -> None:
        self._journal.append(("kill_failed", self.name))
        raise ChildProcessError(10, "No child processes")


class UnreapableFirstWorkers(SlotFactory):
    """The first ``count`` workers (the slots' first) cannot be killed; their replacements can."""

    def __init__(self, journal: Journal, count: int, behaviours: dict[str, Behaviour] | None = None) -> None:
        super().__init__(journal, behaviours)
        self.count = count

    def _make(self) -> SlotWorker:
        with self._lock:
            name = f"w{len(self.workers) + 1}"
            kind = UnreapableWorker if len(self.workers) < self.count else SlotWorker
            worker = kind(name, self.journal, self.behaviours)
            self.workers.append(worker)
            return worker


def test_an_unexpected_error_after_the_post_costs_no_second_post_and_the_slot_starts_over(journal: Journal) -> None:
    """A crash's kill fails (ChildProcessError): the request keeps its one error post, the slot gets a new worker
    and serves on, and the supervisor exits cleanly at SIGTERM."""
    shared = SharedEvents(journal, ["a", "b", "c", "d", "e"])
    factory = UnreapableFirstWorkers(journal, 2, {"b": lambda request_id, _: crash(request_id)})
    code = run_slots(journal, shared, factory, slots=2, then=lambda: wait_until(
        lambda: len(posts(journal)) == 5 and any(entry[0] == "replaced" for entry in journal), "5 posts, 1 restart"))
    assert code is ExitCode.OK
    assert {request_id: [entry[0] for entry in entries] for request_id, entries in posts(journal).items()} == {
        "a": ["response"], "b": ["error"], "c": ["response"], "d": ["response"], "e": ["response"]}
    replaced = [entry for entry in journal if entry[0] == "replaced"]
    assert [entry[1:3] for entry in replaced] == [("supervisor-error", "b")], replaced


def test_an_unexpected_error_before_the_post_gets_the_request_one_error_and_the_slot_starts_over(
        journal: Journal) -> None:
    """A worker found dead before its event, whose kill fails: the event gets one Runtime.ExitError (it never
    reached a worker), the slot gets a new worker and serves the next events."""
    shared = SharedEvents(journal, [])
    factory = UnreapableFirstWorkers(journal, 1)

    def dead_worker_then_events() -> None:
        wait_until(lambda: shared.polls >= 1, "a poll")
        for worker in factory.workers:
            worker.exited = True  # killed while idle (the OOM killer, say)
        with shared.cond:
            shared.events += ["a", "b", "c"]
            shared.cond.notify_all()
        wait_until(lambda: len(posts(journal)) == 3, "3 posts")

    code = run_slots(journal, shared, factory, slots=1, then=dead_worker_then_events)
    assert code is ExitCode.OK
    assert posts(journal) == {"a": [("error", "a", "Runtime.ExitError")], "b": [("response", "b", b'"ok"')],
                              "c": [("response", "c", b'"ok"')]}
    assert [entry[1:3] for entry in journal if entry[0] == "replaced"] == [("supervisor-error", "a")]


def test_the_main_threads_wait_for_shutdown_looks_again_without_a_wake_up(journal: Journal) -> None:
    """A shutdown requested while nothing writes the shutdown pipe (a SIGTERM whose handler the interpreter has not
    run yet) still ends the main thread's wait, within its recheck period (slots.SHUTDOWN_RECHECK_MS)."""
    requested: list[bool] = []
    shutdown_read, shutdown_write = os.pipe()
    children = InertChildren()
    group = SlotGroup(config_for(2), SharedEvents(journal, []).client(),  # type: ignore[arg-type]
                      SharedEvents(journal, []).client, SlotFactory(journal), children,  # type: ignore[arg-type]
                      SoftTimeout(0, {}), shutdown_read, lambda: bool(requested))
    waiter = threading.Thread(target=group._wait_for_shutdown_or_an_end, daemon=True)
    try:
        waiter.start()
        requested.append(True)  # the flag only: no byte in the pipe
        waiter.join(slots_module.SHUTDOWN_RECHECK_MS / 1000 * 5)
        assert not waiter.is_alive(), "the wait did not look at the flag again"
    finally:
        os.close(shutdown_read)
        os.close(shutdown_write)
        children.close()
