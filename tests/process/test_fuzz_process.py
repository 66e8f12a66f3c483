"""Hypothesis at the process level: arbitrary event bodies through a running runtime, and arbitrary bytes written
by a handler into the supervisor's pipe. One runtime serves all the examples of a test.

Examples are few and derandomized so that CI is deterministic; LAMBDA_SUPERVISOR_FUZZ_EXAMPLES raises the count.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import StartRuntime
from lambda_supervisor.shared.protocol import MAGIC
from process_checks import SOAK, zombie_children

EXAMPLES = int(os.environ.get("LAMBDA_SUPERVISOR_FUZZ_EXAMPLES") or 30)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


def expected_echo(body: bytes) -> tuple[str, Any]:
    """What the echo handler's invocation must end as, computed the way Lambda's Python runtime would."""
    if not body.strip():
        event: Any = {}
    else:
        try:
            event = json.loads(body)
        except (ValueError, RecursionError):
            return "error", "Runtime.UnmarshalError"
    # as awslambdaric off the managed 3.12+ runtimes: non-ASCII (a lone surrogate too) written as \u escapes
    return "response", json.dumps(event).encode("utf-8")


bodies = st.one_of(
    st.binary(max_size=2048),
    json_values.map(lambda value: json.dumps(value).encode()),
    json_values.map(lambda value: json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    # nesting well inside or well beyond the recursion limit (near it, the two processes' stacks differ)
    st.sampled_from([1, 50, 400, 5000, 200_000]).map(lambda depth: b"[" * depth + b"]" * depth),
)


def test_any_event_body_gets_exactly_one_sensible_outcome_and_the_worker_stays(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("soak.echo", task_root=SOAK)
    before = runtime.emulator.records()

    @FUZZ
    @given(body=bodies)
    def one_event(body: bytes) -> None:
        record = runtime.invoke(body)
        kind, expected = expected_echo(body)
        assert record.outcome_kind == kind, record.describe()
        if kind == "response":
            assert record.response == expected
        else:
            assert record.error.error_type == expected, record.describe()

    one_event()
    assert runtime.alive()
    assert "worker replaced" not in runtime.log(), "no event body is the worker's fault"
    assert all(len(record.posts) == 1 for record in runtime.emulator.records() if record not in before)


def frame_prefix(header_len: int, payload_len: int) -> bytes:
    return struct.pack(">4sII", MAGIC, header_len, payload_len)


garbage = st.one_of(
    st.binary(max_size=4096),
    # a valid prefix with any lengths, then anything
    st.builds(lambda h, p, rest: frame_prefix(h, p) + rest,
              st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary(max_size=256)),
    # a complete frame whose header is any bytes, or any JSON
    st.binary(max_size=512).map(lambda header: frame_prefix(len(header), 0) + header),
    json_values.map(lambda value: json.dumps(value).encode()).map(
        lambda header: frame_prefix(len(header), 0) + header),
    # a well-formed frame of any type, for a request that is not the one running
    st.sampled_from(["result", "error", "ready", "init_error", "invoke", ""]).map(
        lambda kind: (lambda header: frame_prefix(len(header), 2) + header + b"{}")(
            json.dumps({"type": kind, "request_id": "not-the-running-one"}).encode())),
)


def test_any_bytes_a_handler_writes_into_the_pipe_cost_one_request_and_one_worker(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("soak.handler", task_root=SOAK)

    @FUZZ
    @given(data=garbage)
    def one_write(data: bytes) -> None:
        record = runtime.invoke({"action": "write_bytes", "data": base64.b64encode(data).decode()})
        assert record.error.error_type in ("Runtime.InvalidWorkerMessage", "Runtime.ResponseSizeTooLarge"), (
            record.describe())
        after = runtime.invoke({"action": "ok"})
        assert after.outcome_kind == "response", after.describe()
        assert runtime.alive()

    one_write()
    assert zombie_children(runtime.process.pid) == []
