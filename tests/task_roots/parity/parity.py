"""One handler for the differential suite (tests/process/test_awslambdaric_parity.py): the event's "case" picks what it does.

The same module runs under awslambdaric and under lambda-supervisor, so that what each posts can be compared.
"""

from __future__ import annotations

import collections
import logging
import sys
import urllib.parse
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.metrics import MetricUnit

Point = collections.namedtuple("Point", "x y")
parity_log = logging.getLogger("parity")
parity_log.setLevel(logging.DEBUG)  # every level reaches the root handler, whatever the root logger's level
powertools_logger = Logger(service="parity-service")
metrics = Metrics(namespace="Parity", service="parity-service")
api = APIGatewayRestResolver()


@api.post("/orders/<order_id>")
def create_order(order_id: str) -> dict[str, Any]:
    return {"order": order_id, "body": api.current_event.body, "verbose": api.current_event.get_query_string_value(
        "verbose")}


@api.get("/orders/<order_id>")
def get_order(order_id: str) -> dict[str, Any]:
    raise ValueError(f"order {order_id} exploded")


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


def _log_everything(case: str) -> None:
    """logging at each level (a dict message, extra fields, an exception), print and stderr, between markers."""
    print(f"==> {case}")
    parity_log.debug("debug record")
    parity_log.info("info record")
    parity_log.warning("warning record %s", 7, extra={"order": 7})
    parity_log.error("error record")
    parity_log.critical("critical record")
    logging.getLogger().warning("root warning")
    logging.getLogger().info("root info")
    parity_log.info({"structured": True, "n": 1})
    parity_log.info("caf\u00e9 \u2713")
    print("printed line")
    print("two\nlines")
    sys.stderr.write("to stderr\n")
    try:
        {}["missing"]
    except KeyError:
        parity_log.exception("with a traceback")
    print(f"\n<== {case}")  # awslambdaric ends a logged traceback without a newline


@powertools_logger.inject_lambda_context
def _powertools_logged(event: dict[str, Any], context: Any) -> None:
    powertools_logger.info("from powertools", extra={"order": 7})
    powertools_logger.warning({"structured": True})
    try:
        {}["missing"]
    except KeyError:
        powertools_logger.exception("powertools exception")


@metrics.log_metrics
def _metered(event: dict[str, Any], context: Any) -> None:
    metrics.add_dimension(name="channel", value="web")
    metrics.add_metric(name="Orders", unit=MetricUnit.Count, value=2)
    metrics.add_metadata(key="order", value="42")


def _by_source(case: str, event: dict[str, Any], context: Any) -> Any:
    if case == "powertools-api":
        return api.resolve(event, context)
    if case == "describe-event":  # exactly what the handler was given
        return event
    if case == "batch":
        return {"batchItemFailures": [{"itemIdentifier": record["messageId"]} for record in event["Records"]]}
    if case == "keys":
        return [urllib.parse.unquote_plus(record["s3"]["object"]["key"]) for record in event["Records"]]
    if case == "authorize":
        if "routeArn" in event:
            return {"isAuthorized": True, "context": {"user": "user-1"}}
        return {"principalId": "user-1", "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}]}}
    raise AssertionError(f"unknown case {case!r}")


def _logged(case: str, event: dict[str, Any], context: Any) -> None:
    if case == "log-everything":
        _log_everything(case)
        return
    print(f"==> {case}")
    if case == "powertools-logger":
        _powertools_logged(event, context)
    else:
        _metered(event, context)
    print(f"\n<== {case}")


LOGGED = ("log-everything", "powertools-logger", "powertools-metrics")
BY_SOURCE = ("powertools-api", "describe-event", "batch", "keys", "authorize")


def handler(event: dict[str, Any], context: Any) -> Any:
    case = event["case"]
    if case in LOGGED:
        return _logged(case, event, context)
    if case in BY_SOURCE:
        return _by_source(case, event, context)
    if case in RESULTS:
        return RESULTS[case]
    if case == "context":
        return _context(context)
    if case == "context-log":
        context.log("via context.log")
        return None
    _raise(case)
    raise AssertionError(f"unknown case {case!r}")
