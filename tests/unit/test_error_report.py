"""The error object's chained stack trace and the unhandled-error log line, in-process."""

from __future__ import annotations

import itertools
import json
from typing import Any

from lambda_supervisor.worker.error_log import error_log_line, text_error_line
from lambda_supervisor.worker.error_report import (
    MAX_CHAINED_EXCEPTIONS,
    chained_stack_trace,
    describe_handler_exception,
)


def _raised(function: Any) -> BaseException:
    try:
        function()
    except Exception as error:
        return error
    raise AssertionError("nothing raised")


def _from() -> None:
    try:
        raise KeyError("id")
    except KeyError as error:
        raise ValueError("bad id") from error


def _suppressed() -> None:
    try:
        raise KeyError("id")
    except KeyError:
        raise ValueError("bad id") from None


def test_an_explicit_cause_follows_the_frames() -> None:
    stack = chained_stack_trace(_raised(_from))
    assert "in _raised" in stack[0] and "in _from" in stack[1]
    assert stack[2] == "Caused by: KeyError: 'id'\n"
    assert "raise KeyError" in stack[3]
    assert "^" not in "".join(stack)  # formatted as awslambdaric does, without 3.11's markers


def test_from_none_hides_the_context() -> None:
    assert not any("KeyError" in entry for entry in chained_stack_trace(_raised(_suppressed)))


def test_a_looping_chain_ends() -> None:
    first, second = ValueError("a"), KeyError("b")
    first.__cause__, second.__cause__ = second, first
    assert chained_stack_trace(first) == ["Caused by: KeyError: 'b'\n"]


def test_a_long_chain_is_cut() -> None:
    errors = [ValueError(str(n)) for n in range(20)]
    for newer, older in itertools.pairwise(errors):
        newer.__context__ = older
    stack = chained_stack_trace(errors[0])
    assert len(stack) == MAX_CHAINED_EXCEPTIONS
    assert stack[0] == "Raised while handling: ValueError: 1\n"


def test_the_xray_cause_has_the_exceptions_own_frames() -> None:
    error, cause = describe_handler_exception(_raised(_from), ())
    assert error["errorType"] == "ValueError"
    assert [frame.label for frame in cause.stack] == ["_raised", "_from"]
    assert cause.error_type == "ValueError" and cause.message == "bad id"


def test_the_text_line_is_one_event_with_no_break_space_indents() -> None:
    error = {"errorType": "E", "errorMessage": "a\nb", "stackTrace": ['  File "x.py", line 1, in f\n    g()\n', ""]}
    line = text_error_line(error)
    assert line == ('[ERROR] E: a\rb\rTraceback (most recent call last):\r\u00a0\u00a0File "x.py", line 1, in f'
                    '\r\u00a0\u00a0\u00a0\u00a0g()\r\n')
    assert text_error_line({"errorType": "", "errorMessage": "", "stackTrace": []}) == (
        "[ERROR]\rTraceback (most recent call last):\n")


def test_the_json_line_has_awslambdarics_keys_in_order() -> None:
    error = {"errorType": "E", "errorMessage": "m", "stackTrace": ["s\n"]}
    record = json.loads(error_log_line(error, "req-1", json_format=True))
    assert list(record) == ["timestamp", "level", "errorMessage", "errorType", "requestId", "stackTrace"]
    assert record["level"] == "ERROR" and record["requestId"] == "req-1" and record["timestamp"].endswith("Z")
