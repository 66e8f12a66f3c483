"""A flaky Runtime API: the real supervisor retries with backoff and loses no result it already computed.

Faults are injected into the emulator before it handles a request, so a faulted post is never recorded and a
retried one must arrive exactly once.
"""

from __future__ import annotations

import pytest

from conftest import StartRuntime, wait_for
from lambda_supervisor.local.emulator import Delay, Fault, Reset, Status
from lambda_supervisor.supervisor.exit_codes import ExitCode

NEXT = "invocation/next$"
RESPONSE = r"invocation/[^/]+/response$"
ERROR = r"invocation/[^/]+/error$"
API_FAULTS = [pytest.param(Status(500), id="500"), pytest.param(Status(503), id="503"),
              pytest.param(Reset(), id="reset"), pytest.param(Delay(0.5), id="slow")]


@pytest.mark.parametrize("fault", API_FAULTS)
def test_a_faulted_response_post_is_retried_and_arrives_exactly_once(start_runtime: StartRuntime,
                                                                       fault: Fault) -> None:
    runtime = start_runtime("faults.echo")
    injection = runtime.emulator.inject(RESPONSE, fault, times=2)
    record = runtime.invoke({"n": 1})
    assert record.json()["event"] == {"n": 1}
    assert len(record.posts) == 1, record.describe()
    if isinstance(fault, Delay):  # slow, not failed: nothing to retry
        assert injection.fired == 1
    else:
        assert injection.fired == 2
        assert runtime.log().count("runtime api fault, retrying: call=_post") == 2
    assert runtime.invoke({"n": 2}).json()["event"] == {"n": 2}
    assert runtime.alive()


@pytest.mark.parametrize("fault", API_FAULTS)
def test_a_faulted_error_post_is_retried_and_arrives_exactly_once(start_runtime: StartRuntime, fault: Fault) -> None:
    runtime = start_runtime("faults.segfault")
    injection = runtime.emulator.inject(ERROR, fault, times=1)
    record = runtime.invoke()
    assert record.error.error_type == "Runtime.ExitError"
    assert injection.fired == 1
    assert runtime.invoke().error.error_type == "Runtime.ExitError"
    assert runtime.alive()


@pytest.mark.parametrize("fault", API_FAULTS)
def test_a_faulted_next_is_survived(start_runtime: StartRuntime, fault: Fault) -> None:
    runtime = start_runtime("faults.pid")
    pid = runtime.invoke().json()  # the runtime is now in its next `next`; the one after that takes the fault
    injection = runtime.emulator.inject(NEXT, fault, times=2, method="GET")
    assert runtime.invoke().json() == pid
    assert runtime.invoke().json() == pid, "a Runtime API fault is no reason to replace the worker"
    assert injection.fired == 2
    assert runtime.alive()
    if not isinstance(fault, Delay):
        assert "runtime api fault, retrying: call=_get_next" in runtime.log()


def test_a_restart_of_the_runtime_api_between_invocations_is_survived(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.pid")
    pid = runtime.invoke().json()
    polls = runtime.emulator.next_poll_count
    runtime.emulator.restart(down_s=0.5)  # the supervisor is blocked in `next`: its connection drops
    runtime.emulator.wait_next_polled(polls + 1, timeout=30)
    assert runtime.invoke().json() == pid
    assert runtime.alive()
    assert "runtime api fault, retrying: call=_get_next" in runtime.log()


def test_a_restart_while_a_result_is_being_posted_loses_nothing(start_runtime: StartRuntime) -> None:
    """The first response post is held, the emulator goes down under it, and the retried post is the only one."""
    runtime = start_runtime("faults.echo")
    held = runtime.emulator.inject(RESPONSE, Delay(30), times=1)
    polls = runtime.emulator.next_poll_count  # counted before the event: the runtime may poll again at once
    request_id = runtime.emulator.submit({"n": 3})
    wait_for(lambda: held.fired == 1, what="the response post to be held")
    runtime.emulator.restart(down_s=0.3)
    record = runtime.emulator.wait_outcome(request_id, 30)
    assert record.json()["event"] == {"n": 3}
    runtime.emulator.wait_next_polled(polls + 1, timeout=30)
    assert len(record.posts) == 1, record.describe()
    assert runtime.invoke({"n": 4}).json()["event"] == {"n": 4}


def test_500s_for_longer_than_the_retry_budget_end_the_runtime(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.echo", env={"LAMBDA_SUPERVISOR_API_RETRY_S": "1"})
    runtime.invoke()
    runtime.emulator.inject(NEXT, Status(500), times=None)
    runtime.emulator.submit({})  # the poll in progress hands this out; the one after it meets the 500s
    assert runtime.wait_exit(60) == ExitCode.RUNTIME_API_GONE
