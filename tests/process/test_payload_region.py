"""Large payloads cross the worker's shared-memory region (shared/payload_region.py), end to end: they arrive
exactly, a worker that lies about the region costs one request and its worker, and it cannot resize the region
under the supervisor's read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TASK_ROOTS, StartRuntime
from lambda_supervisor.shared.payload_region import REGION_MIN_BYTES

REGION = TASK_ROOTS / "region"
MiB = 1024 * 1024
EPERM = 1


def test_a_large_json_event_and_result_with_unicode_round_trip_exactly_through_the_region(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("region.echo", task_root=REGION)
    assert runtime.invoke({"small": True}).json() == {"small": True}
    text = "é\u2028😀\x00\"\\ 漢字" * (MiB // 8)  # well over 1 MiB once encoded, every kind of escape
    event = {"text": text, "nested": [{"k": text[:1000]}] * 3, "n": 1.5}
    record = runtime.invoke(event)
    assert record.outcome_kind == "response", record.describe()
    assert json.loads(record.response) == event


def test_large_payloads_use_the_region_and_small_ones_do_not(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("region.region_rss_kb", task_root=REGION)
    quiet = runtime.invoke({"pad": "x" * (REGION_MIN_BYTES // 4)}).json()
    assert quiet["rss_kb"] is not None, "the worker has a region mapped"
    assert quiet["rss_kb"] < REGION_MIN_BYTES // 1024, "a small event does not touch the region"
    touched = runtime.invoke({"pad": "x" * (2 * MiB)}).json()
    assert touched["pid"] == quiet["pid"]
    assert touched["rss_kb"] >= 2 * MiB // 1024, "a 2 MiB event crossed the region"


@pytest.mark.parametrize("strategy", ["fresh", "spare", "fork"])
def test_a_replacement_worker_has_a_region_of_its_own(start_runtime: StartRuntime, strategy: str) -> None:
    """Spawned, promoted or forked from the template, the worker after a crash gets large payloads right."""
    runtime = start_runtime("region.crash_or_echo", task_root=REGION, env={"LAMBDA_SUPERVISOR_RESPAWN": strategy})
    event = {"text": "ü" * (MiB // 4)}  # 512 KiB in, 1.5 MiB out (escaped)
    first = runtime.invoke(event).json()
    assert runtime.invoke({"crash": True}).error.error_type == "Runtime.ExitError"
    second = runtime.invoke(event).json()
    assert second["pid"] != first["pid"] and second["event"] == first["event"] == event


@pytest.mark.parametrize("size", [REGION_MIN_BYTES, 3 * MiB + 7])
def test_a_large_bytes_result_round_trips_exactly(start_runtime: StartRuntime, size: int) -> None:
    runtime = start_runtime("region.echo_bytes", task_root=REGION)
    record = runtime.invoke({"seed": "s", "size": size})
    assert record.outcome_kind == "response", record.describe()
    assert record.content_type == "application/unknown"
    expected = runtime.invoke({"seed": "s", "size": size}).response
    assert len(record.response) == size and record.response == expected
    assert len(set(record.response)) == 256


@pytest.mark.parametrize(
    ("region_bytes", "payload", "detail"),
    [
        (2**40, "", "result of 1099511627776 bytes in a shared-memory region of"),
        (-1, "", "region_bytes is not a non-negative integer"),
        ("12", "", "region_bytes is not a non-negative integer"),
        (True, "", "region_bytes is not a non-negative integer"),
        (10, "also here", "a payload both in the frame and in the shared-memory region"),
    ],
)
def test_a_worker_lying_about_the_region_is_an_invalid_message_and_is_replaced(
    start_runtime: StartRuntime, region_bytes: object, payload: str, detail: str
) -> None:
    runtime = start_runtime("region.lie", task_root=REGION)
    record = runtime.invoke({"region_bytes": region_bytes, "payload": payload})
    assert record.error.error_type == "Runtime.InvalidWorkerMessage", record.describe()
    assert detail in (record.error.error_message or ""), record.describe()
    assert "worker replaced" in (record.error.error_message or "")
    assert runtime.alive()
    assert runtime.log().count("worker replaced") == 1


def test_a_worker_cannot_resize_its_region_under_the_supervisor(start_runtime: StartRuntime, tmp_path: Path) -> None:
    runtime = start_runtime("region.shrink_then_reply", task_root=REGION)
    report = tmp_path / "report.json"
    record = runtime.emulator.invoke({"size": MiB, "report": str(report)}, wait=60)
    assert record.outcome_kind == "response", record.describe()
    assert record.response == b"y" * MiB
    assert json.loads(report.read_text()) == [EPERM, EPERM], "the region's size is sealed"
    assert runtime.alive()


def test_an_oversize_result_claimed_in_the_region_is_refused_as_from_the_pipe(start_runtime: StartRuntime) -> None:
    """Over the response limit but within the region: the same error as the same payload in a frame, and the
    worker stays, as it does then."""
    runtime = start_runtime("region.lie", task_root=REGION, env={"LAMBDA_SUPERVISOR_MAX_RESPONSE_BYTES": str(MiB)})
    record = runtime.invoke({"region_bytes": MiB + 1})
    assert record.error.error_type == "Runtime.ResponseSizeTooLarge", record.describe()
    assert "worker replaced" not in runtime.log()
