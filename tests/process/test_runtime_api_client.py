"""The Runtime API client against the emulator (real HTTP on loopback): what runs while a post is in flight.

The supervisor writes an invocation's REPORT line while the Runtime API handles its post. That bookkeeping must
run exactly once whatever happens to the post, and its own failure must never pass for the post's: an OSError
taken for a network fault would be retried and the result posted twice.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import free_port
from lambda_supervisor.local.emulator import LostAnswer, Reset, RuntimeApiEmulator, Status
from lambda_supervisor.supervisor.runtime_api import PostResult, RuntimeApiClient, RuntimeApiUnavailable

RESPONSE = r"invocation/[^/]+/response$"
ERROR = r"invocation/[^/]+/error$"


@pytest.fixture
def emulator() -> Iterator[RuntimeApiEmulator]:
    with RuntimeApiEmulator("127.0.0.1", 0) as running:
        yield running


@pytest.fixture
def client(emulator: RuntimeApiEmulator) -> Iterator[RuntimeApiClient]:
    api = RuntimeApiClient(emulator.address, retry_seconds=10)
    yield api
    api.close()


def test_meanwhile_runs_once_while_the_post_is_in_flight(emulator: RuntimeApiEmulator,
                                                         client: RuntimeApiClient) -> None:
    request_id = emulator.submit({"n": 1})
    invocation = client.next_invocation()
    seen: list[int] = []
    assert client.post_response(invocation.request_id, b'{"ok": true}',
                                meanwhile=lambda: seen.append(len(emulator.record(request_id).posts)))
    assert len(seen) == 1
    assert emulator.wait_outcome(request_id).posts == [("response", b'{"ok": true}')]


@pytest.mark.parametrize("fault", [Status(500), Reset()], ids=["500", "reset"])
def test_meanwhile_runs_once_when_the_post_is_retried(emulator: RuntimeApiEmulator, client: RuntimeApiClient,
                                                      fault: Status | Reset) -> None:
    request_id = emulator.submit({"n": 2})
    invocation = client.next_invocation()
    injection = emulator.inject(ERROR, fault, times=2)
    calls: list[str] = []
    client.post_error(invocation.request_id, {"errorType": "E", "errorMessage": "m"},
                      meanwhile=lambda: calls.append("report"))
    assert injection.fired == 2
    assert calls == ["report"]
    assert len(emulator.wait_outcome(request_id).posts) == 1


def test_a_failing_meanwhile_is_raised_after_one_post_and_never_retried_as_one(emulator: RuntimeApiEmulator,
                                                                               client: RuntimeApiClient) -> None:
    request_id = emulator.submit({"n": 3})
    invocation = client.next_invocation()

    def broken_stdout() -> None:
        raise BrokenPipeError("stdout is gone")  # an OSError, like the network faults that are retried

    with pytest.raises(BrokenPipeError):
        client.post_response(invocation.request_id, b"1", meanwhile=broken_stdout)
    assert emulator.wait_outcome(request_id).posts == [("response", b"1")]
    emulator.submit({"n": 4})
    assert client.next_invocation().body == b'{"n": 4}', "the connection is still usable"


def test_meanwhile_still_runs_when_the_runtime_api_is_gone() -> None:
    client = RuntimeApiClient(f"127.0.0.1:{free_port()}", retry_seconds=0.3)
    calls: list[str] = []
    with pytest.raises(RuntimeApiUnavailable):
        client.post_response("gone", b"1", meanwhile=lambda: calls.append("report"))
    assert calls == ["report"]


def test_a_post_refused_as_already_answered_is_told_from_other_refusals(emulator: RuntimeApiEmulator,
                                                                       client: RuntimeApiClient) -> None:
    emulator.submit({"n": 5})
    invocation = client.next_invocation()
    assert client.post_response(invocation.request_id, b"1") is PostResult.ACCEPTED
    assert client.post_error(invocation.request_id, {"errorType": "E", "errorMessage": "m"}) \
        is PostResult.ALREADY_ANSWERED  # someone posted before us: on Lambda, code in the worker
    assert client.post_response("no-such-request", b"1") is PostResult.REFUSED
    assert not PostResult.ALREADY_ANSWERED and not PostResult.REFUSED


def test_already_answered_on_a_retry_is_our_own_earlier_attempt(emulator: RuntimeApiEmulator,
                                                                 client: RuntimeApiClient) -> None:
    request_id = emulator.submit({"n": 6})
    invocation = client.next_invocation()
    emulator.inject(RESPONSE, LostAnswer(), times=1)
    assert client.post_response(invocation.request_id, b"1") is PostResult.ACCEPTED
    assert emulator.record(request_id).posts == [("response", b"1"), ("response", b"1")]


def test_next_asked_with_a_post_is_polling_before_the_next_call_and_delivers_the_next_event(
        emulator: RuntimeApiEmulator, client: RuntimeApiClient) -> None:
    first = emulator.submit({"n": 1})
    invocation = client.next_invocation()
    polls = emulator.next_poll_count
    assert client.post_response(invocation.request_id, b'"one"', ask_next=True)
    emulator.wait_next_polled(polls + 1, timeout=10)  # asked before next_invocation is called
    assert emulator.wait_outcome(first).posts == [("response", b'"one"')]
    second = emulator.submit({"n": 2})
    following = client.next_invocation()
    assert (following.request_id, bytes(following.body)) == (second, b'{"n": 2}')
    assert emulator.next_poll_count == polls + 1, "the event came to the pipelined next: no other was asked"


@pytest.mark.parametrize("fault", [Status(500), Reset()], ids=["500", "reset"])
def test_a_post_with_next_pipelined_is_retried_without_queueing_behind_the_long_poll(
        emulator: RuntimeApiEmulator, client: RuntimeApiClient, fault: Status | Reset) -> None:
    """500: the long poll stays asked on the first connection and the retry goes over a second one (behind the
    poll it would wait for the next event). A reset takes the poll with it: the retry asks again."""
    first = emulator.submit({"n": 1})
    invocation = client.next_invocation()
    injection = emulator.inject(RESPONSE, fault, times=1)
    assert client.post_response(invocation.request_id, b'"one"', ask_next=True)  # no event is pending now
    assert injection.fired == 1
    assert emulator.wait_outcome(first).posts == [("response", b'"one"')]
    second = emulator.submit({"n": 2})
    assert client.next_invocation().request_id == second
    third = emulator.submit({"n": 3})
    after = client.next_invocation()  # the client goes on as usual
    assert after.request_id == third
    assert client.post_response(after.request_id, b'"three"')
    assert emulator.wait_outcome(third).posts == [("response", b'"three"')]
