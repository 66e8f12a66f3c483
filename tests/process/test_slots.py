"""Lambda Managed Instances, end to end: N slots (AWS_LAMBDA_MAX_CONCURRENCY) against the emulator.

Each test runs the real bootstrap with four slots: their requests overlap, a crash, a hang or a memory blowup in
one slot costs only that slot's request (the others answer correctly and on time), every request gets exactly one
post, and after SIGTERM nothing is left running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import TASK_ROOTS, Runtime, StartRuntime, process_gone, wait_for
from lambda_supervisor.local.emulator.records import InvocationRecord

SLOTS = TASK_ROOTS / "slots"
SLOW_S = 1.0


def start_slots(start_runtime: StartRuntime, slots: int = 4, timeout_s: float = 3.0, **env: str) -> Runtime:
    # a hang is answered a second before its deadline: on time even on a loaded machine
    runtime = start_runtime("slots.act", task_root=SLOTS, timeout_s=timeout_s, wait_ready=False,
                            env={"AWS_LAMBDA_MAX_CONCURRENCY": str(slots),
                                 "LAMBDA_SUPERVISOR_TIMEOUT_MARGIN_MS": "1000", **env})
    runtime.emulator.wait_next_polled(slots, timeout=60)  # every slot polls: all are ready
    return runtime


def submit_all(runtime: Runtime, events: list[dict[str, Any]]) -> list[InvocationRecord]:
    """Submit the events at once and wait for their outcomes, then until every slot that served one polls again
    (a slot replacing its worker is not polling yet)."""
    polls = runtime.emulator.next_poll_count
    ids = [runtime.emulator.submit(json.dumps(event).encode()) for event in events]
    records = [runtime.emulator.wait_outcome(request_id, timeout=60) for request_id in ids]
    for record in records:
        assert len(record.posts) == 1, f"expected exactly one post, got {record.describe()}"
    runtime.emulator.wait_next_polled(polls + len(events), timeout=60)
    return records


def descendants(pid: int) -> list[int]:
    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def test_four_slow_requests_overlap(start_runtime: StartRuntime) -> None:
    runtime = start_slots(start_runtime)
    records = submit_all(runtime, [{"action": "sleep", "seconds": SLOW_S}] * 4)
    results = [record.json() for record in records]
    assert len({result["pid"] for result in results}) == 4, "each slot has a worker of its own"
    latest_start = max(result["started"] for result in results)
    earliest_end = min(result["ended"] for result in results)
    assert latest_start < earliest_end, f"the four requests did not overlap: {results}"


@pytest.mark.parametrize(("action", "error_type"), [
    ("crash", "Runtime.ExitError"),
    ("hang", "Runtime.Timeout"),
    ("oom", "Runtime.OutOfMemory"),
])
def test_a_fault_in_one_slot_leaves_the_other_three_correct_and_on_time(
        start_runtime: StartRuntime, action: str, error_type: str) -> None:
    runtime = start_slots(start_runtime)
    faulty, *good = submit_all(runtime, [{"action": action}] + [{"action": "sleep", "seconds": SLOW_S}] * 3)
    assert faulty.error.error_type == error_type, faulty.describe()
    for record in good:
        assert record.outcome_kind == "response", record.describe()
        assert record.json()["request_id"] == record.request_id
        took = record.json()["ended"] - record.json()["started"]
        assert took < SLOW_S + 1.0, f"a good request waited on the faulty slot: {took:.2f} s"
    if action == "hang":  # answered before Lambda's deadline: no reset of the environment
        assert not runtime.resets
    # the faulty slot got a new worker: four requests at once are still served by four workers
    again = submit_all(runtime, [{"action": "sleep", "seconds": 0.2}] * 4)
    assert all(record.outcome_kind == "response" for record in again)
    assert len({record.json()["pid"] for record in again}) == 4
    assert runtime.alive()
    assert f"reason={'out-of-memory' if action == 'oom' else 'timeout' if action == 'hang' else 'crash'}" in \
        runtime.log()
    assert "slot=" in runtime.log(), "the replacement names its slot"


def test_all_workers_together_over_the_memory_lose_the_largest_not_a_random_one(
        start_runtime: StartRuntime, tmp_path: Path) -> None:
    """512 MB with two slots: 464 MB for all workers, each may take 464 MB. One holds 300 MB; when the other
    grows past 164 MB the total is over, and the one killed is the one holding 300 MB."""
    runtime = start_slots(start_runtime, slots=2, timeout_s=20.0, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512")
    ready = tmp_path / "big-ready"
    big = runtime.emulator.submit(json.dumps({"action": "hold", "mb": 300, "ready_file": str(ready)}).encode())
    wait_for(ready.exists, 30, "the first slot to hold its memory")
    small = runtime.emulator.submit(json.dumps({"action": "hold", "mb": 250, "seconds": 3.0}).encode())
    big_record = runtime.emulator.wait_outcome(big, timeout=30)
    small_record = runtime.emulator.wait_outcome(small, timeout=30)
    assert big_record.error.error_type == "Runtime.OutOfMemory", big_record.describe()
    assert "held the most" in (big_record.error.error_message or "")
    assert small_record.outcome_kind == "response", small_record.describe()
    assert runtime.alive()


def test_sigterm_drains_in_flight_requests_sends_no_new_next_and_leaves_no_process(
        start_runtime: StartRuntime, tmp_path: Path) -> None:
    runtime = start_slots(start_runtime, LAMBDA_SUPERVISOR_SHUTDOWN_GRACE_MS="3000")
    emulator = runtime.emulator
    started = [tmp_path / f"started-{number}" for number in range(2)]
    ids = [emulator.submit(json.dumps({"action": "sleep", "seconds": SLOW_S, "started_file": str(path)}).encode())
           for path in started]
    wait_for(lambda: all(path.exists() for path in started), 30, "both requests running")
    processes = descendants(runtime.process.pid)
    assert len(processes) >= 5, processes  # four workers and the template
    polls = emulator.next_poll_count
    runtime.process.send_signal(signal.SIGTERM)
    assert runtime.wait_exit(30) == 0
    for request_id in ids:
        record = emulator.wait_outcome(request_id, timeout=5)
        assert record.outcome_kind == "response", f"an in-flight request finishes within the grace: " \
            f"{record.describe()}"
    assert emulator.next_poll_count == polls, "no new next after SIGTERM"
    for pid in processes:
        assert wait_for(lambda pid=pid: process_gone(pid), 10, f"process {pid} to be gone")


def test_each_slots_worker_writes_to_a_log_stream_of_its_own(start_runtime: StartRuntime, tmp_path: Path) -> None:
    """Managed Instances hand each concurrent worker its own log stream through a unix socket."""
    path = str(tmp_path / "log-provider.sock")
    streams: list[bytearray] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)

    def collect() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            stream = bytearray()
            streams.append(stream)
            threading.Thread(target=_drain, args=(connection, stream), daemon=True).start()

    threading.Thread(target=collect, daemon=True).start()
    try:
        runtime = start_slots(start_runtime, slots=2, _LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET=path)
        records = submit_all(runtime, [{"action": "print"}, {"action": "print"}])
        for record in records:
            line = f"printed by {record.request_id}".encode()
            wait_for(lambda line=line: any(line in stream for stream in streams), 10, "the print in a stream")
            assert line not in runtime.log_path.read_bytes(), "a worker's output left the supervisor's stream"
        assert len(streams) >= 2
        assert b"lambda-supervisor" not in b"".join(streams), "the supervisor's own lines stay on its stdout"
    finally:
        server.close()
        os.unlink(path)


def _drain(connection: socket.socket, into: bytearray) -> None:
    with connection:
        while data := connection.recv(65536):
            into.extend(data)


@pytest.mark.parametrize("strategy", ["fresh", "spare"])
def test_with_an_init_per_slot_a_crash_is_replaced_and_the_other_slot_unaffected(
        start_runtime: StartRuntime, strategy: str) -> None:
    runtime = start_slots(start_runtime, slots=2, LAMBDA_SUPERVISOR_RESPAWN=strategy)
    # slow enough that one slot cannot serve both while the other's poll waits for the GIL in the emulator
    first = submit_all(runtime, [{"action": "sleep", "seconds": 0.3}] * 2)
    pids = {record.json()["pid"] for record in first}
    assert len(pids) == 2, "each slot's worker is a process of its own"
    crashed, good = submit_all(runtime, [{"action": "crash"}, {"action": "sleep", "seconds": 0.5}])
    assert crashed.error.error_type == "Runtime.ExitError", crashed.describe()
    assert good.outcome_kind == "response" and good.json()["pid"] in pids
    again = submit_all(runtime, [{"action": "sleep", "seconds": 0.3}] * 2)
    assert all(record.outcome_kind == "response" for record in again)
    assert len({record.json()["pid"] for record in again}) == 2
    assert f"strategy={strategy}" in runtime.log()


def test_an_in_flight_request_that_outlives_the_shutdown_grace_gets_one_error(
        start_runtime: StartRuntime, tmp_path: Path) -> None:
    runtime = start_slots(start_runtime, slots=2, timeout_s=30.0, LAMBDA_SUPERVISOR_SHUTDOWN_GRACE_MS="500")
    emulator = runtime.emulator
    started = tmp_path / "started"
    request_id = emulator.submit(json.dumps({"action": "hang", "started_file": str(started)}).encode())
    wait_for(started.exists, 30, "the hang to be running")
    signalled = time.monotonic()
    runtime.process.send_signal(signal.SIGTERM)
    assert runtime.wait_exit(30) == 0
    record = emulator.wait_outcome(request_id, timeout=5)
    assert len(record.posts) == 1 and record.error.error_type == "Runtime.ExitError", record.describe()
    assert "shutting down" in (record.error.error_message or "")
    assert time.monotonic() - signalled < 10, "ended at the grace, not at its deadline"


def _blocked_signals(pid: int, tid: int) -> set[int]:
    """The signals thread ``tid`` of ``pid`` blocks (SigBlk of its /proc status)."""
    for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            mask = int(line.split()[1], 16)
            return {number for number in range(1, 65) if mask >> (number - 1) & 1}
    raise AssertionError(f"no SigBlk for thread {tid}")


@pytest.mark.parametrize("slots", [1, 4])
def test_only_the_main_thread_can_receive_the_signals_the_supervisor_handles(
        start_runtime: StartRuntime, slots: int) -> None:
    """The kernel gives a process-directed signal to any thread that does not block it, and Python runs the handler
    only on the main thread: a SIGTERM given to a slot's (or the idle reaper's) thread was left pending while the
    main thread waited for it, and the runtime ignored it until it was killed (a flaky shutdown under load)."""
    runtime = start_slots(start_runtime, slots) if slots > 1 else start_runtime("slots.act", task_root=SLOTS)
    pid = runtime.process.pid
    handled = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
    threads = sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task"))
    assert len(threads) == slots + 1 + (slots > 1), threads  # the idle reaper, and a thread per slot if several
    # the main thread blocks them only while it starts threads (signal_mask.py), which may still be under way
    wait_for(lambda: _blocked_signals(pid, pid) & handled == set(), 30, "the main thread to receive them again")
    for tid in threads:
        if tid != pid:
            assert _blocked_signals(pid, tid) >= handled, f"thread {tid} may receive a handled signal"
    runtime.process.send_signal(signal.SIGTERM)
    assert runtime.wait_exit(30) == 0
