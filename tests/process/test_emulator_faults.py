"""The emulator's fault injection, seen from a plain HTTP client: statuses, resets, delays and restarts."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import wait_for
from lambda_supervisor.local.emulator import Delay, Reset, RuntimeApiEmulator, Status

NEXT = "invocation/next$"
RESPONSE = r"invocation/[^/]+/response$"


@pytest.fixture
def emulator() -> Iterator[RuntimeApiEmulator]:
    with RuntimeApiEmulator(function_timeout_s=5.0) as emu:
        yield emu


def session() -> requests.Session:
    client = requests.Session()
    client.trust_env = False
    return client


def runtime_url(emulator: RuntimeApiEmulator, path: str) -> str:
    return f"http://{emulator.address}/2018-06-01/runtime/{path}"


def take_next(emulator: RuntimeApiEmulator, client: requests.Session) -> str:
    reply = client.get(runtime_url(emulator, "invocation/next"), timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.headers["Lambda-Runtime-Aws-Request-Id"]


def test_a_status_fault_answers_instead_and_is_not_recorded(emulator: RuntimeApiEmulator) -> None:
    client = session()
    request_id = emulator.submit({})
    assert take_next(emulator, client) == request_id
    injection = emulator.inject(RESPONSE, Status(500), times=2)
    url = runtime_url(emulator, f"invocation/{request_id}/response")
    for _ in range(2):
        reply = client.post(url, data=b"1", timeout=10)
        assert reply.status_code == 500
        assert reply.json()["errorType"] == "Emulator.InjectedFault"
    assert emulator.record(request_id).posts == []
    assert client.post(url, data=b"1", timeout=10).status_code == 202
    assert injection.fired == 2 and emulator.faults_fired == 2
    assert emulator.record(request_id).posts == [("response", b"1")]


def test_a_reset_fault_is_a_connection_error_and_the_next_connection_works(emulator: RuntimeApiEmulator) -> None:
    client = session()
    emulator.inject(NEXT, Reset(), method="GET")
    with pytest.raises(requests.ConnectionError):
        client.get(runtime_url(emulator, "invocation/next"), timeout=10)
    request_id = emulator.submit({})
    assert take_next(emulator, client) == request_id
    assert emulator.faults_fired == 1


def test_faults_match_the_path_and_method_only(emulator: RuntimeApiEmulator) -> None:
    client = session()
    injection = emulator.inject(RESPONSE, Status(503), method="POST")
    request_id = emulator.submit({})
    assert take_next(emulator, client) == request_id  # GET /next does not match
    error_url = runtime_url(emulator, f"invocation/{request_id}/error")
    assert client.post(error_url, data=b"{}", timeout=10).status_code == 202  # neither does the error path
    assert injection.fired == 0
    emulator.clear_faults()
    assert emulator.faults_fired == 0


def test_a_delay_fault_holds_the_request_then_handles_it(emulator: RuntimeApiEmulator) -> None:
    client = session()
    request_id = emulator.submit({})
    take_next(emulator, client)
    emulator.inject(RESPONSE, Delay(0.3))
    started = time.monotonic()
    assert client.post(runtime_url(emulator, f"invocation/{request_id}/response"), data=b"2", timeout=10).ok
    assert time.monotonic() - started >= 0.3
    assert emulator.record(request_id).posts == [("response", b"2")]


def test_a_restart_ends_a_blocked_poll_refuses_connections_then_serves_on_the_same_port(
    emulator: RuntimeApiEmulator,
) -> None:
    port = emulator.port
    client = session()
    with ThreadPoolExecutor(max_workers=2) as pool:
        blocked = pool.submit(client.get, runtime_url(emulator, "invocation/next"), timeout=30)
        emulator.wait_next_polled(1, timeout=10)
        restarting = pool.submit(emulator.restart, 0.5)
        with pytest.raises(requests.ConnectionError):
            blocked.result(timeout=10)
        restarting.result(timeout=10)
    assert emulator.port == port
    request_id = emulator.submit({"after": "restart"})
    assert take_next(emulator, session()) == request_id


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    except OSError:  # accepted into the backlog of a listener closing right now
        return False
    return False


def test_stop_during_a_restarts_outage_ends_it() -> None:
    emulator = RuntimeApiEmulator().start()
    with ThreadPoolExecutor(max_workers=1) as pool:
        restarting = pool.submit(emulator.restart, 60)
        try:
            wait_for(lambda: refuses_connections(emulator.port), what="the emulator to stop listening")
        finally:
            emulator.stop()
        restarting.result(timeout=10)
    with pytest.raises(RuntimeError):
        emulator.submit({})
