"""A worker that breaks *between* invocations (after replying, before the next event reached it) costs no request:
not one byte of the next event got to it, so that request is served by a fresh worker instead of being blamed."""

from __future__ import annotations

import os

import pytest

from conftest import StartRuntime
from process_checks import start_soak


def test_a_worker_that_broke_its_input_pipe_after_replying_costs_the_next_request_nothing(
    start_runtime: StartRuntime,
) -> None:
    runtime, _ = start_soak(start_runtime)
    broken = runtime.invoke({"action": "close_in_pipe_and_linger"}).json()["pid"]
    record = runtime.invoke({"action": "ok"})  # the broken worker is still alive (lingering) when this arrives
    assert record.outcome_kind == "response", record.describe()
    assert record.json()["pid"] != broken
    log = runtime.log()
    assert "worker replaced: reason=died-while-idle" in log
    assert "invocation failed" not in log


@pytest.mark.skipif(os.environ.get("TEST_RESPAWN_STRATEGY") == "fork",
                    reason="under fork, import-time code runs once in the template, never in a worker")
def test_a_worker_broken_from_birth_costs_each_request_one_error_after_one_retry(start_runtime: StartRuntime) -> None:
    runtime, _ = start_soak(start_runtime, SOAK_BREAK_AT_IMPORT="1")
    for _ in range(2):
        record = runtime.invoke({"action": "ok"})
        assert record.outcome_kind == "error" and len(record.posts) == 1, record.describe()
        assert record.error.error_type in ("Runtime.ExitError", "Runtime.InvalidWorkerMessage")
    assert runtime.alive()
