"""What the worker sends that ends up in the headers of a post: a result's content type and an error's X-Ray cause.

The worker is untrusted: a content type outside the fixed set is a protocol violation (the worker is replaced), and
an X-Ray cause is rebuilt field by field, bounded, and written as ASCII JSON without CR or LF.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import TASK_ROOTS, StartRuntime
from lambda_supervisor.shared.xray import MAX_XRAY_CAUSE_BYTES, StackFrame, XRayCause
from lambda_supervisor.supervisor.xray_cause import xray_error_cause

HOSTILE = TASK_ROOTS / "hostile_frames"
ERROR = {"errorType": "ValueError", "errorMessage": "bad\r\ninput \u00e9", "stackTrace": []}


def _safe(value: str | None) -> str:
    assert value is not None
    assert len(value) <= MAX_XRAY_CAUSE_BYTES
    assert value.isascii() and value.isprintable()  # so no CR, LF or other control character
    return value


@pytest.mark.parametrize("content_type", ["text/html\r\nX-Injected: 1", "application/JSON", ["application/json"],
                                          {"a": 1}, None])
def test_an_unknown_content_type_is_an_invalid_worker_message(start_runtime: StartRuntime, content_type: Any) -> None:
    runtime = start_runtime("hostile.content_type", task_root=HOSTILE)
    record = runtime.invoke({"content_type": content_type})
    assert record.error.error_type == "Runtime.InvalidWorkerMessage"
    assert "unknown content type" in (record.error.error_message or "")
    assert "x-injected" not in record.outcome_headers
    assert runtime.alive()


def test_a_hostile_xray_cause_is_bounded_and_ascii(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("hostile.xray_cause", task_root=HOSTILE)
    record = runtime.emulator.invoke(b"{}", wait=30)
    assert record.error.error_type == "Hostile"
    assert "x-injected" not in record.outcome_headers
    cause = json.loads(_safe(record.outcome_headers["lambda-runtime-function-xray-error-cause"]))
    assert cause["working_directory"] == "/var/task\r\nX-Injected: 1"  # kept, but escaped in the header
    assert cause["paths"] == ["\u00e9\u2028" * 512]  # from the frames kept, not the worker's list; paths cut
    assert len(cause["exceptions"][0]["message"]) == 2048


def test_an_xray_cause_of_the_wrong_shape_is_replaced(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("hostile.xray_cause_wrong_types", task_root=HOSTILE)
    record = runtime.emulator.invoke(b"{}", wait=30)
    cause = json.loads(_safe(record.outcome_headers["lambda-runtime-function-xray-error-cause"]))
    assert cause["exceptions"] == [{"message": "m", "type": "Hostile", "stack": []}]


def test_a_supervisor_fault_gets_a_cause_from_its_error(start_runtime: StartRuntime) -> None:
    record = start_runtime("faults.os_exit").invoke()
    cause = json.loads(_safe(record.outcome_headers["lambda-runtime-function-xray-error-cause"]))
    assert cause["exceptions"][0]["type"] == "Runtime.ExitError"
    assert cause["exceptions"][0]["stack"] == []


def test_a_long_stack_keeps_its_newest_frames_within_the_bound() -> None:
    frames = tuple(StackFrame(f"f{i}", "/var/task/" + "d" * 900 + f"{i}.py", i) for i in range(200))
    value = _safe(XRayCause("/var/task", "E", "m", frames).header_value())
    stack = json.loads(value)["exceptions"][0]["stack"]
    assert 0 < len(stack) < 200
    assert stack[-1]["label"] == "f199"  # where it was raised


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=20,
)
_frames = st.lists(st.fixed_dictionaries({"label": st.text(), "path": st.text(), "line": st.integers()}), max_size=5)
_causes = st.fixed_dictionaries({
    "working_directory": st.text(),
    "exceptions": st.lists(st.fixed_dictionaries({"message": st.text(), "type": st.text(), "stack": _frames}),
                           min_size=1, max_size=2),
})


@settings(max_examples=300, deadline=None)
@given(candidate=_json | _causes)
def test_any_candidate_gives_a_safe_header(candidate: Any) -> None:
    _safe(xray_error_cause(candidate, ERROR))


@pytest.mark.parametrize("candidate", [None, "x", [], {"exceptions": [{}]}])
def test_no_usable_candidate_falls_back_to_the_error(candidate: Any) -> None:
    cause = json.loads(_safe(xray_error_cause(candidate, ERROR)))
    assert cause["exceptions"] == [{"message": "bad\r\ninput \u00e9", "type": "ValueError", "stack": []}]
