"""The main loop in-process, with no worker process and no socket: a fake Runtime API that records its posts, and a
fake worker factory whose workers return scripted outcomes (as gunicorn's tests/test_arbiter.py drives its
arbiter). One journal records, in order, what the loop did: invocations, posts, kills, retirements, replacements.

These pin the loop's decisions: post first and replace after; a request broken by another's fault served again
exactly once; recycling after the post; a worker that died while idle replaced before the next request.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lambda_supervisor.shared.errors import ErrorType, error_object
from lambda_supervisor.supervisor import loop as loop_module
from lambda_supervisor.supervisor import slot as slot_module
from lambda_supervisor.supervisor.config import Config
from lambda_supervisor.supervisor.exit_codes import ExitCode
from lambda_supervisor.supervisor.idle_reaper import IdleReaper
from lambda_supervisor.supervisor.loop import Supervisor
from lambda_supervisor.supervisor.outcome import Failure, Outcome, ReplacementReason, Response, failure
from lambda_supervisor.supervisor.process_tree import Children
from lambda_supervisor.supervisor.runtime_api import Invocation, PostResult, RuntimeApiUnavailable

Journal = list[tuple[Any, ...]]
OK = Response(b'"ok"')


def crash(request_id: str, *, delivered: bool = True) -> Failure:
    return failure(ErrorType.EXIT, request_id, "Runtime exited with error: signal SIGKILL", ReplacementReason.CRASH,
                   delivered=delivered)


def stray_frame_from(guilty: str, request_id: str) -> Failure:
    return failure(ErrorType.INVALID_WORKER_MESSAGE, request_id, "worker sent an invalid message",
                   ReplacementReason.STRAY_FRAME, delivered=False, blame=guilty)


class FakeWorker:
    """A ready worker that answers each event with the next outcome of its script (a response once it runs out)."""

    def __init__(self, name: str, journal: Journal, script: list[Callable[[str], Outcome]]) -> None:
        self.name = name
        self.pid = 0
        self.invocations = 0
        self.started_monotonic = time.monotonic()
        self.ready_seconds: float | None = 0.0
        self.peak_rss_bytes = self.last_rss_bytes = self.zombie_children = 0
        self.exit_description: str | None = None
        self.exited = False
        self._journal = journal
        self._script = list(script)
        self.homes: list[int | None] = []  # the home CPU each event named (None: the one it started with)

    def invoke(self, invocation: Invocation, *, soft_timeout_ms: int = 0,
               shutdown_requested: Callable[[], bool] = lambda: False, home_cpu: int | None = None) -> Outcome:
        assert not self.exited, f"{self.name} was handed {invocation.request_id} after it exited"
        self.invocations += 1
        self.homes.append(home_cpu)
        self._journal.append(("invoke", self.name, invocation.request_id))
        return self._script.pop(0)(invocation.request_id) if self._script else OK

    def has_exited(self) -> bool:
        return self.exited

    def own_rss_bytes(self) -> int:
        return self.last_rss_bytes

    def count_zombie_children(self, at_least: int) -> int:
        return self.zombie_children

    def kill(self) -> None:
        self._end("kill")

    def retire(self, grace_s: float) -> None:
        self._end("retire")

    def terminate(self, grace_s: float) -> None:
        self._end("terminate")

    def _end(self, how: str) -> None:
        if not self.exited:
            self._journal.append((how, self.name))
        self.exited = True
        self.exit_description = self.exit_description or "exit status 0"


class FakeFactory:
    """Makes workers ``w1``, ``w2``, ... each with the next script of ``scripts`` (none: always a response)."""

    strategy = "fake"
    cpu_handoff = None
    interrupt_fd: int | None = None

    def __init__(self, journal: Journal, scripts: list[list[Callable[[str], Outcome]]] | None = None, *,
                 first_started_ago_s: float = 0.0) -> None:
        self.journal = journal
        self.scripts = list(scripts or [])
        self.workers: list[FakeWorker] = []
        self.first_started_ago_s = first_started_ago_s
        self.upkeep: list[str] = []  # what maintain() has to do, one item a call (a standby to start, say)

    def _make(self) -> FakeWorker:
        worker = FakeWorker(f"w{len(self.workers) + 1}", self.journal, self.scripts.pop(0) if self.scripts else [])
        self.workers.append(worker)
        return worker

    def start(self) -> FakeWorker:
        worker = self._make()
        worker.started_monotonic -= self.first_started_ago_s
        return worker

    def replace(self) -> FakeWorker:
        worker = self._make()
        self.journal.append(("replacement", worker.name))
        return worker

    def maintain(self) -> None:
        if self.upkeep:
            self.journal.append(("maintain", self.upkeep.pop(0)))

    def upkeep_due(self) -> bool:
        return bool(self.upkeep)

    def reserves(self) -> list[FakeWorker]:
        return []

    def close(self, grace_s: float) -> None:
        pass


class FakeRuntimeApi:
    """Hands out the scripted events (running each one's ``before`` first, as if it happened while the loop was
    idle in ``next``), records every post (and, in ``asked_next``, the posts that asked for ``next`` with them),
    and is gone once the events run out."""

    def __init__(self, journal: Journal, events: list[str | tuple[str, Callable[[], None]]],
                 post_results: dict[str, PostResult] | None = None) -> None:
        self.journal = journal
        self.events = list(events)
        self.post_results = post_results or {}
        self.asked_next: list[str] = []

    def next_invocation(self) -> Invocation:
        if not self.events:
            raise RuntimeApiUnavailable("no more events")
        event = self.events.pop(0)
        request_id, before = (event, None) if isinstance(event, str) else event
        if before is not None:
            before()
        return Invocation(request_id, int(time.time() * 1000) + 60_000, "arn:aws:lambda:fake", None, None, None,
                          b"{}", None, time.monotonic())

    def post_response(self, request_id: str, body: bytes, *, content_type: str = "",
                      meanwhile: Callable[[], None] | None = None, ask_next: bool = False) -> PostResult:
        return self._post(("response", request_id, body), request_id, meanwhile, ask_next)

    def post_error(self, request_id: str, error: dict[str, Any], *, xray_cause: object = None,
                   meanwhile: Callable[[], None] | None = None, ask_next: bool = False) -> PostResult:
        return self._post(("error", request_id, error["errorType"]), request_id, meanwhile, ask_next)

    def _post(self, entry: tuple[Any, ...], request_id: str, meanwhile: Callable[[], None] | None,
              ask_next: bool = False) -> PostResult:
        self.journal.append(entry)
        if ask_next:
            self.asked_next.append(request_id)
        if meanwhile is not None:
            meanwhile()
        return self.post_results.get(request_id, PostResult.ACCEPTED)

    def post_init_error(self, error: dict[str, Any]) -> bool:
        self.journal.append(("init_error", error["errorType"]))
        return True

    def close(self) -> None:
        pass


class InertChildren(Children):
    """Counts and wakes as the real one does, but has no process of its own to reap or kill (this is pytest's)."""

    @staticmethod
    def become_subreaper() -> bool:
        return True

    def kill_orphans(self) -> list[int]:
        return []

    @staticmethod
    def reap_exited_orphans(keep: set[int]) -> None:
        pass


@pytest.fixture
def journal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Journal]:
    """The journal; the loop's ``worker_replaced`` events are recorded in it too."""
    entries: Journal = []

    def record(event: str, message: str, /, *, level: str = "INFO", **fields: Any) -> None:
        if event == "worker_replaced":
            entries.append(("replaced", str(fields["reason"]), fields["request_id"]))

    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)}
    monkeypatch.setattr(loop_module, "emit", record)
    monkeypatch.setattr(slot_module, "emit", record)
    yield entries
    for signum, handler in handlers.items():  # run() installs the supervisor's own
        signal.signal(signum, handler)


def run(journal: Journal, api: FakeRuntimeApi, factory: FakeFactory, **settings: Any) -> ExitCode:
    environ = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9", "_HANDLER": "app.handler",
               "LAMBDA_TASK_ROOT": str(Path(__file__).parent)}
    config = Config.load(environ).replace(**settings)
    children = InertChildren()
    try:
        return Supervisor(config, api, environ, factory, children).run()  # type: ignore[arg-type]
    finally:
        children.close()


def posts_for(journal: Journal, request_id: str) -> list[tuple[Any, ...]]:
    return [entry for entry in journal if entry[0] in ("response", "error") and entry[1] == request_id]


def test_a_fault_is_posted_before_the_worker_is_replaced(journal: Journal) -> None:
    factory = FakeFactory(journal, [[crash]])
    assert run(journal, FakeRuntimeApi(journal, ["a", "b"]), factory) is ExitCode.RUNTIME_API_GONE
    assert journal == [
        ("invoke", "w1", "a"),
        ("error", "a", "Runtime.ExitError"),  # the caller is waiting: its answer first
        ("kill", "w1"),
        ("replacement", "w2"),
        ("replaced", "crash", "a"),
        ("invoke", "w2", "b"),
        ("response", "b", b'"ok"'),
        ("terminate", "w2"),
    ]


def test_a_timed_out_worker_is_killed_only_after_its_error_is_posted(journal: Journal) -> None:
    def timeout(request_id: str) -> Outcome:
        return failure(ErrorType.TIMEOUT, request_id, "Task timed out", ReplacementReason.TIMEOUT)

    run(journal, FakeRuntimeApi(journal, ["a"]), FakeFactory(journal, [[timeout]]))
    assert journal.index(("error", "a", "Runtime.Timeout")) < journal.index(("kill", "w1"))
    assert ("replaced", "timeout", "a") in journal


def test_a_request_broken_by_an_earlier_ones_stray_frame_is_served_again_once(journal: Journal) -> None:
    broken = lambda request_id: stray_frame_from("a", request_id)  # noqa: E731
    run(journal, FakeRuntimeApi(journal, ["a", "b"]), FakeFactory(journal, [[lambda _: OK, broken]]))
    assert journal[journal.index(("invoke", "w1", "b")):] == [
        ("invoke", "w1", "b"),
        ("kill", "w1"),
        ("replacement", "w2"),
        ("replaced", "stray-frame", "a"),  # blamed on the request whose frame arrived late
        ("invoke", "w2", "b"),
        ("response", "b", b'"ok"'),
        ("terminate", "w2"),
    ]
    assert posts_for(journal, "a") == [("response", "a", b'"ok"')]


def test_a_request_whose_worker_died_before_the_event_reached_it_is_served_again(journal: Journal) -> None:
    gone = lambda request_id: crash(request_id, delivered=False)  # noqa: E731
    run(journal, FakeRuntimeApi(journal, ["a"]), FakeFactory(journal, [[gone]]))
    assert ("replaced", "died-while-idle", "a") in journal
    assert [entry for entry in journal if entry[0] == "invoke"] == [("invoke", "w1", "a"), ("invoke", "w2", "a")]
    assert posts_for(journal, "a") == [("response", "a", b'"ok"')]


def test_a_request_is_served_again_only_once(journal: Journal) -> None:
    gone = lambda request_id: crash(request_id, delivered=False)  # noqa: E731
    factory = FakeFactory(journal, [[gone], [gone]])
    run(journal, FakeRuntimeApi(journal, ["a", "b"]), factory)
    assert [entry for entry in journal if entry[0] == "invoke"] == [
        ("invoke", "w1", "a"), ("invoke", "w2", "a"), ("invoke", "w3", "b")]
    assert posts_for(journal, "a") == [("error", "a", "Runtime.ExitError")]  # the second time, it is its answer
    assert journal.index(("error", "a", "Runtime.ExitError")) < journal.index(("replacement", "w3"))
    assert posts_for(journal, "b") == [("response", "b", b'"ok"')]


def test_a_worker_is_recycled_after_max_invocations_once_its_last_answer_is_posted(journal: Journal) -> None:
    run(journal, FakeRuntimeApi(journal, ["a", "b", "c"]), FakeFactory(journal), max_invocations=2)
    assert journal[journal.index(("invoke", "w1", "b")):] == [
        ("invoke", "w1", "b"),
        ("response", "b", b'"ok"'),
        ("retire", "w1"),  # healthy: its input is closed and it exits on its own
        ("replacement", "w2"),
        ("replaced", "recycle-max-invocations", "b"),
        ("invoke", "w2", "c"),
        ("response", "c", b'"ok"'),
        ("terminate", "w2"),
    ]


def test_a_worker_is_recycled_by_age_after_the_post(journal: Journal) -> None:
    factory = FakeFactory(journal, first_started_ago_s=3600)
    run(journal, FakeRuntimeApi(journal, ["a", "b"]), factory, max_worker_age_s=60.0)
    assert journal[:5] == [
        ("invoke", "w1", "a"),
        ("response", "a", b'"ok"'),
        ("retire", "w1"),
        ("replacement", "w2"),
        ("replaced", "recycle-max-age", "a"),
    ]
    assert ("invoke", "w2", "b") in journal


def test_a_worker_that_died_while_idle_is_replaced_and_the_next_request_served_by_the_new_one(
        journal: Journal) -> None:
    factory = FakeFactory(journal)

    def die_while_idle() -> None:
        factory.workers[0].exited = True  # the OOM killer, an operator: no invocation of ours did it
        journal.append(("died", "w1"))

    run(journal, FakeRuntimeApi(journal, ["a", ("b", die_while_idle)]), factory)
    assert journal == [
        ("invoke", "w1", "a"),
        ("response", "a", b'"ok"'),
        ("died", "w1"),
        ("replacement", "w2"),
        ("replaced", "died-while-idle", "b"),
        ("invoke", "w2", "b"),
        ("response", "b", b'"ok"'),
        ("terminate", "w2"),
    ]


def test_a_worker_whose_request_was_answered_by_someone_else_is_replaced_after_the_post(journal: Journal) -> None:
    api = FakeRuntimeApi(journal, ["a", "b"], post_results={"a": PostResult.ALREADY_ANSWERED})
    run(journal, api, FakeFactory(journal))
    assert journal[:5] == [
        ("invoke", "w1", "a"),
        ("response", "a", b'"ok"'),
        ("kill", "w1"),
        ("replacement", "w2"),
        ("replaced", "foreign-post", "a"),
    ]


def test_a_response_with_a_stray_frame_after_it_stands_and_the_worker_is_replaced(journal: Journal) -> None:
    answered_then_stray = lambda _: Response(b'"mine"', fault=ReplacementReason.STRAY_FRAME)  # noqa: E731
    run(journal, FakeRuntimeApi(journal, ["a", "b"]), FakeFactory(journal, [[answered_then_stray]]))
    assert journal[:5] == [
        ("invoke", "w1", "a"),
        ("response", "a", b'"mine"'),
        ("kill", "w1"),
        ("replacement", "w2"),
        ("replaced", "stray-frame", "a"),
    ]


def test_next_is_asked_with_a_post_only_when_the_worker_serves_the_next_event_as_it_is(journal: Journal) -> None:
    """Pipelined: after a response, and after the handler's own error (the worker is fine). Not: after a fault,
    nor when the worker is due for recycling (each is replaced before ``next`` is asked, as without pipelining)."""
    def handler_error(request_id: str) -> Outcome:
        return failure("ValueError", request_id, "bad input")

    api = FakeRuntimeApi(journal, ["a", "b", "c", "d"])
    run(journal, api, FakeFactory(journal, [[lambda _: OK, handler_error]]), max_invocations=3)
    assert [entry for entry in journal if entry[0] in ("invoke", "replaced")] == [
        ("invoke", "w1", "a"), ("invoke", "w1", "b"), ("invoke", "w1", "c"),
        ("replaced", "recycle-max-invocations", "c"), ("invoke", "w2", "d"),
    ]
    assert posts_for(journal, "b") == [("error", "b", "ValueError")]
    assert api.asked_next == ["a", "b", "d"]


def test_a_crash_is_posted_without_asking_for_next(journal: Journal) -> None:
    api = FakeRuntimeApi(journal, ["a", "b", "c"])
    run(journal, api, FakeFactory(journal, [[lambda _: OK, crash]]))
    assert ("replaced", "crash", "b") in journal
    assert api.asked_next == ["a", "c"]


def test_next_is_asked_only_after_the_strategy_has_started_its_reserve(journal: Journal) -> None:
    """A standby (or a fork template) due after the first response is started before ``next`` is asked, as
    without pipelining: Lambda may freeze the sandbox once it is asked."""
    api = FakeRuntimeApi(journal, ["a", "b"])
    factory = FakeFactory(journal)
    factory.upkeep.append("standby")
    run(journal, api, factory)
    assert journal.index(("response", "a", b'"ok"')) < journal.index(("maintain", "standby"))
    assert api.asked_next == ["b"]


def test_with_pipelining_off_no_post_asks_for_next(journal: Journal) -> None:
    api = FakeRuntimeApi(journal, ["a", "b"])
    run(journal, api, FakeFactory(journal), pipeline_next=False)
    assert posts_for(journal, "b") == [("response", "b", b'"ok"')]
    assert api.asked_next == []


def test_an_init_failure_is_reported_and_nothing_is_served(journal: Journal) -> None:
    from lambda_supervisor.supervisor.worker_process import WorkerInitFailed

    factory = FakeFactory(journal)

    def failing_start() -> FakeWorker:
        raise WorkerInitFailed(error_object(ErrorType.IMPORT_MODULE, "No module named 'app'"))

    factory.start = failing_start  # type: ignore[method-assign]
    assert run(journal, FakeRuntimeApi(journal, ["a"]), factory) is ExitCode.INIT_FAILED
    assert journal == [("init_error", "Runtime.ImportModuleError")]


def test_outcomes_are_frozen() -> None:
    with pytest.raises(AttributeError):
        crash("a").delivered = False  # type: ignore[misc]


def test_the_replacement_reasons_keep_their_names() -> None:
    """They are the ``reason`` of the log line and a CloudWatch metric dimension: renaming one breaks dashboards."""
    # plain constants at run time (an enum for mypy only): every upper-case name of the class is a reason
    assert {value for name, value in vars(ReplacementReason).items() if name.isupper()} == {
        "crash", "timeout", "out-of-memory", "memory-error", "invalid-message", "oversize-frame", "stray-frame",
        "shutdown", "foreign-post", "died-while-idle", "supervisor-error", "recycle-max-invocations", "recycle-max-age",
        "recycle-rss-over-limit", "recycle-rss-soft-limit", "recycle-zombies"}


def test_the_idle_reaper_sweeps_on_a_counted_child_signal_only_while_the_loop_is_idle() -> None:
    """The SIGCHLD handler only counts (Children.count_signal); the sweep runs on the reaper's thread, and only
    while the loop is idle in ``next``: never while it uses its workers."""
    children = InertChildren()
    swept = threading.Semaphore(0)
    reaper = IdleReaper(children, swept.release)
    reaper.start()
    try:
        children.start_counting_signals()
        children.count_signal()  # busy: not swept
        assert not swept.acquire(timeout=0.2)
        with reaper.idle():
            children.count_signal()
            assert swept.acquire(timeout=10), "a child signal while idle was not swept"
        assert children.signal_count == 2
        children.count_signal()  # busy again
        assert not swept.acquire(timeout=0.2)
    finally:
        reaper.stop()
        children.close()
