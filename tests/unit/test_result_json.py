"""worker/result_json.py writes every result as awslambdaric's own marshaller does, whichever encoder it uses: the
standard library's for plain data, simplejson for the rest. Compared with awslambdaric's Encoder itself, under the
environment that decides whether it escapes non-ASCII characters."""

from __future__ import annotations

import collections
import enum
import os
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from awslambdaric import lambda_runtime_marshaller
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_supervisor.worker.result_json import (
    MAX_PLAIN_CHARS,
    MAX_PLAIN_DEPTH,
    MAX_PLAIN_MEMBERS,
    ResultEncoder,
    is_plain,
)

#: AWS_EXECUTION_ENV values: awslambdaric escapes non-ASCII characters on the first, and not on the second.
ESCAPING, NOT_ESCAPING = "AWS_Lambda_python3.11", "AWS_Lambda_python3.12"

Point = collections.namedtuple("Point", "x y")


class Colour(enum.IntEnum):
    RED = 1


class Text(str):
    pass


class Number(float):
    pass


def _awslambdaric_encoder(execution_env: str) -> lambda_runtime_marshaller.Encoder:
    """awslambdaric's Encoder reads AWS_EXECUTION_ENV when it is made."""
    with mock.patch.dict(os.environ, {"AWS_EXECUTION_ENV": execution_env}):
        return lambda_runtime_marshaller.Encoder()


AWSLAMBDARIC = {execution_env: _awslambdaric_encoder(execution_env) for execution_env in (ESCAPING, NOT_ESCAPING)}


def _outcome(encode: Callable[[Any], str], value: Any) -> tuple[str, str]:
    """("ok", text) or ("error", "TypeError: ...")."""
    try:
        return "ok", encode(value)
    except Exception as error:
        return "error", f"{type(error).__name__}: {error}"


def awslambdaric_encode(value: Any, execution_env: str) -> tuple[str, str]:
    """What awslambdaric's marshaller says of ``value``."""
    return _outcome(AWSLAMBDARIC[execution_env].encode, value)


def our_encode(value: Any, execution_env: str) -> tuple[str, str]:
    """What a fresh ResultEncoder says of ``value``, escaping as awslambdaric would under ``execution_env``."""
    return _outcome(ResultEncoder(ensure_ascii=execution_env == ESCAPING).encode, value)


#: Any code point, lone surrogates and U+2028/U+2029 included, and the ASCII range on its own (escapes, controls).
characters = st.characters(exclude_categories=()) | st.characters(max_codepoint=0x7F) | st.sampled_from("\u2028\u2029")
texts = st.text(characters, max_size=50)  # 40 leaves of them stay under MAX_PLAIN_CHARS
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**40), max_value=10**40)
           | st.floats(allow_nan=True, allow_infinity=True) | texts)
plain = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.lists(inner, max_size=5).map(tuple)
                     | st.dictionaries(texts, inner, max_size=5), max_leaves=40)
not_plain_leaves = st.sampled_from([Decimal("1.10"), Decimal("NaN"), Decimal("-0"), Point(1, "a"), Colour.RED,
                                    Text("t\u00e9"), Number(0.5), {1: "int key"}, {None: 1}, {2.5: 1}, {True: 1},
                                    set(), b"bytes", object()])
mixed = st.recursive(scalars | not_plain_leaves,
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
                     max_leaves=20)


@pytest.mark.parametrize("execution_env", [ESCAPING, NOT_ESCAPING])
@settings(max_examples=400, deadline=None)
@given(value=plain)
def test_plain_data_is_written_by_json_exactly_as_awslambdaric_writes_it(
        value: Any, execution_env: str) -> None:
    assert is_plain(value)
    assert our_encode(value, execution_env) == awslambdaric_encode(value, execution_env)


@pytest.mark.parametrize("execution_env", [ESCAPING, NOT_ESCAPING])
@settings(max_examples=300, deadline=None)
@given(value=mixed)
def test_any_result_is_written_exactly_as_awslambdaric_writes_it(
        value: Any, execution_env: str) -> None:
    assert our_encode(value, execution_env) == awslambdaric_encode(value, execution_env)


@pytest.mark.parametrize("value", [
    Point(1, 2), [Point(1, 2)], {"a": (Point(1, 2),)}, Colour.RED, Text("x"), Number(1.0), {1: 2}, Decimal("1.10"),
    [Decimal("1")], {"deep": [[{"x": Decimal(2)}]]},
], ids=repr)
def test_what_json_would_write_differently_is_not_plain(value: Any) -> None:
    """A namedtuple is an array to json and an object to simplejson; an IntEnum's, a str or float subclass's text
    may differ; a Decimal json cannot write at all."""
    assert not is_plain(value)
    for execution_env in (ESCAPING, NOT_ESCAPING):
        assert our_encode(value, execution_env) == awslambdaric_encode(value, execution_env)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_large_deep_and_circular_results_go_to_simplejson() -> None:
    """Past the bounds a result is not checked but encoded by simplejson: the check costs at most
    MAX_PLAIN_MEMBERS members, and json's and simplejson's recursion limits and errors never come into it."""
    assert is_plain(list(range(MAX_PLAIN_MEMBERS)))
    assert not is_plain(list(range(MAX_PLAIN_MEMBERS + 1)))
    assert is_plain(["x" * (MAX_PLAIN_CHARS - 1), "y"]) and not is_plain(["x" * MAX_PLAIN_CHARS, "y"])
    assert not is_plain("x" * (1 << 20))  # a 1 MiB result: simplejson escapes it faster
    assert is_plain(nested(MAX_PLAIN_DEPTH - 1)) and not is_plain(nested(MAX_PLAIN_DEPTH))
    circular: list[Any] = []
    circular.append(circular)
    assert not is_plain(circular)
    too_long = [10**5000]  # plain, but past int-to-str's digit limit: the same ValueError either way
    for value in (list(range(MAX_PLAIN_MEMBERS + 1)), nested(5000), circular, {"a": circular}, too_long,
                  "\u00e9" * (MAX_PLAIN_CHARS + 1)):
        for execution_env in (ESCAPING, NOT_ESCAPING):
            assert our_encode(value, execution_env) == awslambdaric_encode(value, execution_env)


def test_simplejson_is_loaded_only_for_the_first_result_that_needs_it() -> None:
    """In a fresh interpreter: plain results leave simplejson and decimal unloaded; a namedtuple loads them, and
    from then on every result is simplejson's."""
    code = """if True:
        import sys, collections
        from lambda_supervisor.worker.result_json import ResultEncoder
        encoder = ResultEncoder(ensure_ascii=True)
        assert encoder.encode({"a": [1, 2.5, None, True, "\\u00e9"]}) == '{"a": [1, 2.5, null, true, "\\\\u00e9"]}'
        assert "simplejson" not in sys.modules and "decimal" not in sys.modules, sorted(sys.modules)
        assert encoder.encode(collections.namedtuple("P", "x")(1)) == '{"x": 1}'
        assert "simplejson" in sys.modules and "decimal" in sys.modules
        assert encoder.encode((1, 2)) == "[1, 2]"
        print("ok")
    """
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0 and run.stdout == "ok\n", run.stderr
