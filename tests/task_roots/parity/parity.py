"""One handler for the differential suite (tests/test_awslambdaric_parity.py): the event's "case" picks what it does.

The same module runs under awslambdaric and under lambda-supervisor, so that what each posts can be compared.
"""

from __future__ import annotations

import collections
from decimal import Decimal
from typing import Any

Point = collections.namedtuple("Point", "x y")


class OrderError(Exception):
    """A user-defined exception class."""


class PaymentDeclined(OrderError):
    pass


RESULTS: dict[str, Any] = {
    "dict": {"ok": True, "items": [1, 2.5, None], "nested": {"a": "b"}},
    "list": [1, "two", {"three": 3}],
    "str": "hello",
    "unicode-str": "h\u00e9llo \u2713",
    "none": None,
    "int": 12345678901234567890123,
    "float": 0.1,
    "bool": True,
    "bytes": b"\x00\x01raw bytes\xff",
    "empty-bytes": b"",
    "bytearray": bytearray(b"raw"),
    "decimal": Decimal("1.10"),
    "decimal-20-digits": Decimal("12345678901234567890.12345678901234567890"),
    "decimals-nested": {"price": Decimal("12.50"), "qty": [Decimal(3), Decimal("-0.000")], "e": Decimal("1E+2")},
    "decimal-nan": Decimal("NaN"),
    "namedtuple": Point(1, 2),
    "tuple": (1, 2),
    "nested-bytes": {"b": b"text"},
    "unserialisable": {"tags": {"a"}},
}


def _raise(case: str) -> None:
    if case == "raise":
        raise ValueError("boom")
    if case == "raise-empty":
        raise RuntimeError()
    if case == "raise-unicode":
        raise ValueError("caf\u00e9 \u2713")
    if case == "raise-multiline":
        raise ValueError("first line\nsecond line")
    if case == "raise-custom":
        raise PaymentDeclined("card 4242 declined")
    if case == "raise-chained":
        try:
            {}["missing"]
        except KeyError as error:
            raise OrderError("order lookup failed") from error
    if case == "raise-implicit-chain":
        try:
            int("x")
        except ValueError:
            raise LookupError("while parsing")  # noqa: B904 - an implicit chain on purpose
    if case == "raise-nested":
        _deeper(3)


def _deeper(n: int) -> None:
    if n == 0:
        raise TypeError("deep down")
    _deeper(n - 1)


def _describe(value: Any) -> list[str]:
    return [type(value).__name__, repr(value)]


def _fields(value: Any, names: list[str]) -> dict[str, Any] | None:
    if value is None:
        return None
    return {name: _describe(getattr(value, name)) for name in names}


def _context(context: Any) -> dict[str, Any]:
    """Every public attribute: type name and repr (methods listed by name), and the nested objects' fields."""
    names = sorted(name for name in dir(context) if not name.startswith("_"))
    attributes = {name: _describe(getattr(context, name)) for name in names if not callable(getattr(context, name))}
    client_context = context.client_context
    remaining = context.get_remaining_time_in_millis()
    return {
        "attributes": attributes,
        "methods": [name for name in names if callable(getattr(context, name))],
        "identity": _fields(context.identity, ["cognito_identity_id", "cognito_identity_pool_id"]),
        "client_context": _fields(client_context, ["custom", "env", "client"]),
        "client": _fields(getattr(client_context, "client", None), [
            "installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]),
        "w3c": context.w3c(),
        "remaining": [type(remaining).__name__, 0 < remaining <= 60_000],
        "repr": repr(context),
    }


def handler(event: dict[str, Any], context: Any) -> Any:
    case = event["case"]
    if case in RESULTS:
        return RESULTS[case]
    if case == "context":
        return _context(context)
    if case == "context-log":
        context.log("via context.log")
        return None
    _raise(case)
    raise AssertionError(f"unknown case {case!r}")
