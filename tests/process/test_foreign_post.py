"""User code that finds the Runtime API (it can, through /proc/net/tcp) and answers its own request itself.

The worker is never told the address; the test hands it over in the event. The Runtime API refuses the
supervisor's own post as already answered (403 InvalidStateTransition, as AWS's emulator does), and the supervisor
says so in a security warning and replaces the worker.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import StartRuntime, process_gone, wait_for
from lambda_supervisor.local.emulator import LostAnswer

DEADLINES = Path(__file__).parents[1] / "task_roots" / "deadlines"


def test_a_response_posted_behind_the_supervisors_back_is_detected_and_the_worker_replaced(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("deadlines.post_own_response", task_root=DEADLINES)
    emulator = runtime.emulator
    polls = emulator.next_poll_count
    record = emulator.invoke({"runtime_api": emulator.address}, wait=30)
    assert record.response == b'{"forged": true}', "the handler's own post came first and is the outcome"
    wait_for(lambda: len(record.posts) == 2, what="the supervisor's own post")
    supervisor_post = record.posts[1]
    assert supervisor_post[0] == "response"
    assert isinstance(supervisor_post[1], bytes)
    handler_result = json.loads(supervisor_post[1])
    assert handler_result["handler_post_status"] == 202
    emulator.wait_next_polled(polls + 1, timeout=60)
    # found once the post is answered, after ``next`` was asked with it: waited for, as the replacement it leads to
    log = runtime.wait_log(f"worker replaced: reason=foreign-post request_id={record.request_id}")
    assert "SECURITY: the Runtime API says this request was already answered" in log
    assert f"request_id={record.request_id}" in log.split("SECURITY:", 1)[1].splitlines()[0]
    assert f"worker replaced: reason=foreign-post request_id={record.request_id}" in log
    assert process_gone(handler_result["pid"])
    after = runtime.invoke({"runtime_api": "127.0.0.1:9"})  # nothing listens there: the handler's post fails
    assert after.error.error_type == "URLError", after.describe()
    assert runtime.alive() and runtime.resets == []


def test_a_retried_post_refused_as_already_answered_is_not_taken_for_a_foreign_one(
    start_runtime: StartRuntime,
) -> None:
    """The first attempt reached the API but its answer was lost: the retry's refusal is no security event."""
    runtime = start_runtime("deadlines.pid", task_root=DEADLINES)
    emulator = runtime.emulator
    pid = runtime.invoke({}).json()
    lost = emulator.inject(r"invocation/[^/]+/response$", LostAnswer(), times=1)
    polls = emulator.next_poll_count
    record = emulator.invoke({}, wait=30)
    assert record.json() == pid
    emulator.wait_next_polled(polls + 1, timeout=60)
    assert lost.fired == 1 and len(record.posts) == 2, record.describe()
    assert runtime.invoke({}).json() == pid  # served after all that followed the post before it: its lines are in
    log = runtime.log()
    assert "an earlier attempt of this post reached it" in log
    assert "SECURITY" not in log and "worker replaced" not in log
