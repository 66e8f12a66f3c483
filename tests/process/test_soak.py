"""Soak: many invocations on one runtime instance, mixing every handler fault with Runtime API faults.

The short form runs in CI; pass --soak-invocations N (or set LAMBDA_SUPERVISOR_SOAK=N) for a longer one (the
README's figures come from ``LAMBDA_SUPERVISOR_SOAK=3000 .venv/bin/python -m pytest tests/process/test_soak.py -s``).
The sequence is pseudo-random with a fixed seed (LAMBDA_SUPERVISOR_SOAK_SEED), so a failure replays. It asserts that:

- every request id got exactly one post, of the expected kind and errorType (none lost, none duplicated);
- the supervisor never has a zombie child, and no process a handler started outlives the worker that started it
  (checked as the run goes, and at the end);
- the supervisor's descriptor count and RSS stay flat (measured after a warm-up, and at the end);
- the supervisor process never exits.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from dataclasses import dataclass

import pytest

from conftest import Runtime, StartRuntime, wait_for
from lambda_supervisor.local.emulator import Delay, Fault, InvocationRecord, Reset, Status
from process_checks import fd_count, rss_bytes, start_soak, strays, zombie_children

SHORT_FORM = 150
INVOCATIONS = int(os.environ.get("LAMBDA_SUPERVISOR_SOAK") or SHORT_FORM)
SEED = int(os.environ.get("LAMBDA_SUPERVISOR_SOAK_SEED") or 7)
API_FAULT_RATE = 0.08
STRAY_CHECK_EVERY = 10
MAX_RSS_MB = 200
#: After warm-up, the supervisor may open this many more descriptors (a keep-alive socket being replaced) ...
FD_SLACK = 2
#: ... and grow by this much RSS over the run (allocator noise), but no more.
RSS_SLACK_BYTES = 8 * 2**20


@dataclass(frozen=True)
class Action:
    name: str
    weight: int
    error_type: str | None  # None: a response
    detail: str = ""  # must appear in the error message
    timeout_s: float = 10.0
    body: bytes | None = None  # instead of {"action": name}


ACTIONS = [
    Action("ok", 30, None),
    Action("raise", 6, "ValueError", "soak error"),
    Action("bad_json", 3, "Runtime.UnmarshalError", body=b'{"action": '),
    Action("segfault", 4, "Runtime.ExitError", "signal SIGSEGV"),
    Action("os_exit", 4, "Runtime.ExitError", "exit status 3"),
    Action("sigkill", 4, "Runtime.ExitError", "signal SIGKILL"),
    Action("hang", 3, "Runtime.Timeout", "Task timed out", timeout_s=0.5),
    Action("blow_memory", 3, "Runtime.OutOfMemory", f"> {MAX_RSS_MB} MB"),
    Action("spawn_and_return", 4, None),
    Action("spawn_and_crash", 4, "Runtime.ExitError", "exit status 5"),
    Action("spawn_and_hang", 2, "Runtime.Timeout", "Task timed out", timeout_s=1.0),
    Action("write_garbage", 4, "Runtime.InvalidWorkerMessage", "bad frame prefix"),
    Action("write_huge_frame", 3, "Runtime.ResponseSizeTooLarge", "2147483648 bytes"),
    Action("close_out_pipe", 3, "Runtime.InvalidWorkerMessage", "closed its pipe"),
    Action("close_stdio", 3, None),
    Action("close_in_pipe_and_linger", 2, None),  # and the request after it must not pay for that
    Action("daemon_hog", 2, "Runtime.OutOfMemory", f"> {MAX_RSS_MB} MB"),
]
API_FAULTS: list[Fault] = [Status(500), Status(502), Reset(), Delay(0.2)]


@dataclass
class Sent:
    request_id: str
    action: Action


@dataclass
class Tally:
    invocations: int = 0
    handler_faults: int = 0
    api_faults_injected: int = 0
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0


def expectation_problem(record: InvocationRecord, action: Action) -> str | None:
    """Why this record is not what the action should have produced, or None."""
    if action.error_type is None:
        return None if record.outcome_kind == "response" else f"expected a response, got {record.describe()}"
    if record.outcome_kind != "error" or record.error.error_type != action.error_type:
        return f"expected {action.error_type}, got {record.describe()}"
    if action.detail not in (record.error.error_message or ""):
        return f"expected {action.detail!r} in the message, got {record.describe()}"
    return None


def inject_api_fault(runtime: Runtime, rng: random.Random, action: Action) -> None:
    """One fault on the post this invocation will make, or on the poll after the next one."""
    fault = rng.choice(API_FAULTS)
    target = rng.choice(["post", "post", "next"])
    if action.error_type == "Runtime.Timeout":  # a slowed or retried post would miss the deadline: a reset on Lambda
        target = "next"
    if target == "next":
        runtime.emulator.inject("invocation/next$", fault, method="GET")
    else:
        kind = "response" if action.error_type is None else "error"
        runtime.emulator.inject(rf"invocation/[^/]+/{kind}$", fault, method="POST")


def run_one(runtime: Runtime, action: Action, n: int) -> Sent:
    body = action.body if action.body is not None else {"action": action.name, "n": n, "linger": 0.5, "mb": 300}
    polls = runtime.emulator.next_poll_count
    request_id = runtime.emulator.submit(body, timeout_s=action.timeout_s)
    runtime.emulator.wait_outcome(request_id, timeout=action.timeout_s + 30)
    runtime.emulator.wait_next_polled(polls + 1, timeout=60)  # idle again: replaced, reaped, ready
    return Sent(request_id, action)


@pytest.mark.timeout(120 + INVOCATIONS)  # about 0.15 s an invocation on 2 cores; a stuck runtime still fails
def test_soak(start_runtime: StartRuntime) -> None:
    runtime, marker = start_soak(start_runtime, LAMBDA_SUPERVISOR_MAX_RSS_MB=str(MAX_RSS_MB))
    supervisor = runtime.process.pid
    rng = random.Random(SEED)
    weights = [action.weight for action in ACTIONS]
    warm_up = max(20, INVOCATIONS // 10)
    sent: list[Sent] = []
    tally = Tally()
    per_action: Counter[str] = Counter()
    baseline: tuple[int, int] | None = None
    started = time.monotonic()

    for n in range(INVOCATIONS):
        action = rng.choices(ACTIONS, weights)[0] if n < INVOCATIONS - 3 else ACTIONS[0]  # end on ok
        if rng.random() < API_FAULT_RATE and n < INVOCATIONS - 3:
            inject_api_fault(runtime, rng, action)
            tally.api_faults_injected += 1
        sent.append(run_one(runtime, action, n))
        per_action[action.name] += 1
        assert runtime.alive(), f"the supervisor exited after invocation {n} ({action.name}):\n{runtime.log()[-3000:]}"
        # a worker may exit just after answering (its input closed); the idle supervisor reaps it on SIGCHLD
        wait_for(lambda: zombie_children(supervisor) == [], timeout=10,
                 what=f"no zombie children after invocation {n} ({action.name})")
        if n % STRAY_CHECK_EVERY == 0:  # likewise, what such a worker left is killed once it is seen dead
            wait_for(lambda: strays(supervisor, marker) == [], timeout=10,
                     what=f"no orphans after invocation {n} ({action.name})")
        if n + 1 == warm_up:
            baseline = (fd_count(supervisor), rss_bytes(supervisor))

    elapsed = time.monotonic() - started
    end_fds, end_rss = fd_count(supervisor), rss_bytes(supervisor)
    problems = []
    for item in sent:
        record = runtime.emulator.record(item.request_id)
        tally.invocations += 1
        tally.handler_faults += item.action.error_type is not None and item.action.name not in ("raise", "bad_json")
        if not record.posts:
            tally.lost += 1
        elif len(record.posts) > 1:
            tally.duplicated += 1
        if (problem := expectation_problem(record, item.action)) is not None:
            tally.wrong += 1
            problems.append(f"{item.request_id} ({item.action.name}): {problem}")
    fired = runtime.emulator.faults_fired
    assert baseline is not None
    summary = (
        f"soak: {tally.invocations} invocations in {elapsed:.0f} s; {tally.handler_faults} handler faults that cost "
        f"a worker; {fired} Runtime API faults fired ({tally.api_faults_injected} injected); lost={tally.lost} "
        f"duplicated={tally.duplicated} unexpected={tally.wrong}; supervisor fds {baseline[0]} -> {end_fds}, "
        f"RSS {baseline[1] / 2**20:.1f} -> {end_rss / 2**20:.1f} MB (after {warm_up} warm-up invocations); "
        f"respawns {runtime.log().count('worker replaced')}; by action {dict(sorted(per_action.items()))}"
    )
    print(summary)
    assert tally.lost == 0 and tally.duplicated == 0, summary
    assert problems == [], "\n".join(problems[:20])
    assert len(runtime.emulator.records()) == INVOCATIONS, "the runtime posted for a request it was never given"
    assert fired >= tally.api_faults_injected - 1, "at most the last injected fault (on a next) may be pending"
    assert zombie_children(supervisor) == []
    assert strays(supervisor, marker) == []
    assert end_fds <= baseline[0] + FD_SLACK, summary
    assert end_rss <= baseline[1] + RSS_SLACK_BYTES, summary
    assert runtime.alive()
