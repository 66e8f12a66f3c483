"""The emulator under concurrent invocations and concurrent ``GET /next`` polls, as on Lambda Managed Instances.

A tiny runtime made of K threads (each its own keep-alive connection and long poll) and K concurrent callers of the
invoke endpoint: each invocation is handed out once, to one poller, its answer reaches its own caller, and each
deadline counts from its own hand-out. Then awslambdaric's multi-concurrent mode, a real peer, against it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import TASK_ROOTS, clean_environment
from lambda_supervisor.local.emulator.records import InvocationRecord
from lambda_supervisor.local.emulator.server import RuntimeApiEmulator
from lambda_supervisor.local.runtime import kill_process_tree

K = 8
MI_ROOT = TASK_ROOTS / "mi_tools"
WAIT_S = 30.0


class Poller:
    """One slot of a runtime: its own session (connection) and long poll."""

    def __init__(self, emulator: RuntimeApiEmulator) -> None:
        self.base = f"http://{emulator.address}/2018-06-01/runtime/invocation"
        self.session = requests.Session()
        self.session.trust_env = False

    def next(self) -> tuple[str, dict[str, Any]]:
        reply = self.session.get(f"{self.base}/next", timeout=WAIT_S)
        assert reply.status_code == 200, reply.text
        return reply.headers["Lambda-Runtime-Aws-Request-Id"], reply.json()

    def respond(self, request_id: str, body: Any) -> int:
        reply = self.session.post(f"{self.base}/{request_id}/response", data=json.dumps(body), timeout=WAIT_S)
        return reply.status_code


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2 * K) as executor:
        yield executor


def caller(url: str, payload: dict[str, Any]) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False
        return session.post(url, data=json.dumps(payload), timeout=WAIT_S)


def test_k_pollers_hold_k_invocations_at_once_and_each_answer_reaches_its_caller(pool: ThreadPoolExecutor) -> None:
    handed_out: list[str] = []
    lock = threading.Lock()
    all_held = threading.Barrier(K, timeout=WAIT_S)  # no poller answers before all K hold an invocation

    def slot(poller: Poller) -> int:
        request_id, event = poller.next()
        with lock:
            handed_out.append(request_id)
        all_held.wait()
        return poller.respond(request_id, {"echo": event["n"], "request_id": request_id})

    with RuntimeApiEmulator(function_timeout_s=WAIT_S) as emulator:
        slots = [pool.submit(slot, Poller(emulator)) for _ in range(K)]
        emulator.wait_next_polled(K, WAIT_S)
        calls = [pool.submit(caller, emulator.invoke_url, {"n": n}) for n in range(K)]
        assert [each.result(WAIT_S) for each in slots] == [202] * K
        answers = [each.result(WAIT_S) for each in calls]
        records = emulator.records()
    assert len(handed_out) == K and len(set(handed_out)) == K  # each invocation to exactly one poller
    for n, answer in enumerate(answers):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["echo"] == n and body["request_id"] == answer.headers["X-Amzn-RequestId"]
    assert sorted(record.request_id for record in records) == sorted(handed_out)
    assert all(len(record.posts) == 1 for record in records)


def test_many_invocations_through_k_looping_pollers_are_each_handed_out_once(pool: ThreadPoolExecutor) -> None:
    """K pollers in a loop and K callers submitting 10 each: no invocation lost, none handed out twice."""
    per_caller = 10
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def slot(poller: Poller) -> None:
        while True:
            request_id, event = poller.next()
            with lock:
                seen[request_id] += 1
            if event.get("stop"):
                return
            assert poller.respond(request_id, {"echo": event["n"]}) == 202

    def submitter(emulator: RuntimeApiEmulator, first: int) -> list[tuple[int, InvocationRecord]]:
        ids = [(n, emulator.submit({"n": n})) for n in range(first, first + per_caller)]
        return [(n, emulator.wait_outcome(request_id, WAIT_S)) for n, request_id in ids]

    with RuntimeApiEmulator(function_timeout_s=WAIT_S) as emulator:
        slots = [pool.submit(slot, Poller(emulator)) for _ in range(K)]
        outcomes = [pool.submit(submitter, emulator, k * per_caller) for k in range(K)]
        answered = [pair for each in outcomes for pair in each.result(WAIT_S)]
        for _ in range(K):  # one stop event per poller
            emulator.submit({"stop": True})
        for each in slots:
            each.result(WAIT_S)
    assert len(answered) == K * per_caller
    for n, record in answered:
        assert json.loads(record.response) == {"echo": n} and len(record.posts) == 1
    assert set(seen.values()) == {1} and len(seen) == K * per_caller + K


def test_each_deadline_counts_from_its_own_hand_out(pool: ThreadPoolExecutor) -> None:
    timeout_s, gap_s = 5.0, 1.0
    with RuntimeApiEmulator(function_timeout_s=timeout_s) as emulator:
        first_id, second_id = emulator.submit({"n": 1}), emulator.submit({"n": 2})
        first = pool.submit(Poller(emulator).next).result(WAIT_S)
        time.sleep(gap_s)  # the gap measured: the second hand-out comes at least this much later
        second = pool.submit(Poller(emulator).next).result(WAIT_S)
        records = emulator.record(first_id), emulator.record(second_id)
    assert (first[0], second[0]) == (first_id, second_id)
    early, late = records
    assert early.deadline_ms is not None and late.deadline_ms is not None
    assert early.handed_out_at is not None and late.handed_out_at is not None
    assert late.deadline_ms - early.deadline_ms >= gap_s * 1000 - 50
    # each deadline is its own hand-out plus the timeout, whatever else is in flight
    spread_ms = (late.handed_out_at - early.handed_out_at) * 1000
    assert abs((late.deadline_ms - early.deadline_ms) - spread_ms) < 50


def test_a_timeout_of_one_invocation_leaves_the_others_in_flight_alone(pool: ThreadPoolExecutor) -> None:
    timed_out: list[str] = []
    all_held = threading.Barrier(K, timeout=WAIT_S)

    def slot(poller: Poller, emulator: RuntimeApiEmulator) -> int | None:
        request_id, event = poller.next()
        all_held.wait()
        if event["n"] == 0:
            return None  # this one hangs: its deadline passes with no post
        emulator.wait_outcome(hung_id, WAIT_S)  # answer only once the hung one has timed out
        return poller.respond(request_id, {"echo": event["n"]})

    with RuntimeApiEmulator(function_timeout_s=WAIT_S) as emulator:
        emulator.on_timeout = lambda record: timed_out.append(record.request_id)
        hung_id = emulator.submit({"n": 0}, timeout_s=0.5)
        calls = [pool.submit(caller, emulator.invoke_url, {"n": n}) for n in range(1, K)]
        slots = [pool.submit(slot, Poller(emulator), emulator) for _ in range(K)]
        assert sorted(each.result(WAIT_S) or 0 for each in slots) == [0] + [202] * (K - 1)
        answers = [each.result(WAIT_S) for each in calls]
        hung = emulator.record(hung_id)
    assert hung.timed_out is not None and hung.error.error_type == "Sandbox.Timedout"
    assert timed_out == [hung_id]
    for n, answer in enumerate(answers, 1):
        assert answer.status_code == 200 and answer.json() == {"echo": n}, answer.text


@pytest.mark.skipif(importlib.util.find_spec("awslambdaric") is None, reason="awslambdaric is not installed")
def test_awslambdarics_multi_concurrent_mode_overlaps_four_slow_requests(tmp_path: Path) -> None:
    """A real peer: awslambdaric with AWS_LAMBDA_MAX_CONCURRENCY=4 keeps 4 polls open and serves 4 slow requests
    at once, by 4 processes, in about one request's time."""
    sleep_s = 1.5
    with RuntimeApiEmulator(function_timeout_s=WAIT_S) as emulator, (tmp_path / "ric.log").open("wb") as log:
        runtime = start_awslambdaric(emulator, "slow.handler", 4, log)
        try:
            emulator.wait_next_polled(4, 60)
            started = time.monotonic()
            ids = [emulator.submit({"sleep_s": sleep_s, "echo": n}) for n in range(4)]
            records = [emulator.wait_outcome(request_id, WAIT_S) for request_id in ids]
            elapsed = time.monotonic() - started
        finally:
            kill_process_tree(runtime.pid)
            runtime.wait()
    bodies = [record.json() for record in records]
    assert [body["echo"] for body in bodies] == [0, 1, 2, 3]
    assert len({body["pid"] for body in bodies}) == 4
    hand_outs = [record.handed_out_at for record in records]
    assert all(at is not None for at in hand_outs)
    assert max(hand_outs) - min(hand_outs) < sleep_s  # type: ignore[type-var,operator]
    assert elapsed < 2 * sleep_s, elapsed  # in sequence it would take 4 x sleep_s


def start_awslambdaric(emulator: RuntimeApiEmulator, handler: str, concurrency: int,
                       log: Any) -> subprocess.Popen[bytes]:
    environment = clean_environment()
    environment.update(AWS_LAMBDA_RUNTIME_API=emulator.address, _HANDLER=handler, LAMBDA_TASK_ROOT=str(MI_ROOT),
                       PYTHONPATH=str(MI_ROOT), AWS_LAMBDA_MAX_CONCURRENCY=str(concurrency))
    return subprocess.Popen([sys.executable, "-m", "awslambdaric", handler], env=environment, cwd=MI_ROOT,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def test_polls_waiting_counts_the_idle_slots(pool: ThreadPoolExecutor) -> None:
    with RuntimeApiEmulator(function_timeout_s=WAIT_S) as emulator:
        polls = [pool.submit(Poller(emulator).next) for _ in range(3)]
        emulator.wait_polls_waiting(3, WAIT_S)
        emulator.submit({"n": 1})
        done = next(as_completed(polls, WAIT_S))
        assert done.result()[1] == {"n": 1}
        assert emulator.polls_waiting == 2
        with pytest.raises(TimeoutError):
            emulator.wait_polls_waiting(3, 0.2)
        emulator.submit({"n": 2})
        emulator.submit({"n": 3})
        assert sorted(each.result(WAIT_S)[1]["n"] for each in polls) == [1, 2, 3]
        assert emulator.polls_waiting == 0


def test_a_caller_queued_behind_busy_slots_waits_while_the_queue_moves(pool: ThreadPoolExecutor) -> None:
    """More callers than slots: an invocation waiting in the queue longer than timeout + grace is not given up on
    (504) while the runtime keeps taking invocations; its own clock starts at its hand-out."""
    callers, busy_s = 6, 0.3  # the last caller waits about 5 x 0.3 s in the queue, beyond 0.5 + 0.2 s

    def one_slot(poller: Poller) -> None:
        while True:
            request_id, event = poller.next()
            if event.get("stop"):
                return
            time.sleep(busy_s)  # the handler's work
            assert poller.respond(request_id, {"echo": event["n"]}) == 202

    with RuntimeApiEmulator(function_timeout_s=0.5, no_response_grace_s=0.2) as emulator:
        slot = pool.submit(one_slot, Poller(emulator))
        emulator.wait_polls_waiting(1, WAIT_S)
        calls = [pool.submit(caller, emulator.invoke_url, {"n": n}) for n in range(callers)]
        answers = [each.result(WAIT_S) for each in calls]
        emulator.submit({"stop": True})
        slot.result(WAIT_S)
    for n, answer in enumerate(answers):
        assert answer.status_code == 200 and answer.json() == {"echo": n}, (n, answer.text)
