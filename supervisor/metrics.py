"""CloudWatch Embedded Metric Format: the lifecycle events as metrics, one JSON line each, with no API calls.

CloudWatch Logs turns a log event that is a JSON object with an ``_aws.CloudWatchMetrics`` directive into metrics,
so graphs and alarms on restarts need no code and no permissions. Lines are written to stdout as they are (not
wrapped in a log envelope), one per event that has metrics:

* ``invocation`` (the REPORT line, opt-in with ``LAMBDA_SUPERVISOR_REPORT``): ``Invocations``, ``Errors``,
  ``Faults`` (the worker had to be replaced), ``Duration``; dimensions ``[FunctionName]``.
* ``worker_replaced``: ``Restarts`` and ``TimeToReady`` (how long the new worker took); dimensions
  ``[FunctionName]`` and ``[FunctionName, Reason]``, and with several slots ``[FunctionName, Slot]``.
* ``init_failed``: ``InitFailures``; dimensions ``[FunctionName]``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from . import events
from .config import Config

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's
if TYPE_CHECKING:
    from typing import Any

COUNT = "Count"
MILLISECONDS = "Milliseconds"
_BY_FUNCTION = [["FunctionName"]]
_BY_FUNCTION_AND_REASON = [["FunctionName"], ["FunctionName", "Reason"]]
_BY_FUNCTION_REASON_AND_SLOT = [*_BY_FUNCTION_AND_REASON, ["FunctionName", "Slot"]]


class MetricsRecorder:
    """Turns events into EMF lines, returned for the caller to write with the event's own line.

    The ``_aws`` directive of a kind of line (its namespace, dimensions, metric names and units) never changes, so
    it is serialised once per kind; a line then costs one ``json.dumps`` of its values."""

    def __init__(self, namespace: str, function_name: str) -> None:
        self.namespace = namespace
        self.function_name = function_name
        self._directives: dict[tuple[str, ...], str] = {}

    def observe(self, event: str, fields: Mapping[str, Any]) -> str:
        if event == "invocation":
            fault = fields.get("fault")
            return self.line(_BY_FUNCTION, {
                "Invocations": (1, COUNT),
                "Errors": (0 if fields.get("outcome") == "success" else 1, COUNT),
                "Faults": (1 if fault else 0, COUNT),
                "Duration": (round(float(fields.get("duration_ms", 0.0)), 3), MILLISECONDS),
            }, {"RequestId": fields.get("request_id"), "Outcome": fields.get("outcome"), "Fault": fault})
        if event == "worker_replaced":
            slot = fields.get("slot")  # named only with several slots
            return self.line(_BY_FUNCTION_AND_REASON if slot is None else _BY_FUNCTION_REASON_AND_SLOT, {
                "Restarts": (1, COUNT),
                "TimeToReady": (round(float(fields.get("ready_ms", 0.0)), 3), MILLISECONDS),
            }, {"Reason": str(fields.get("reason")), "Slot": None if slot is None else str(slot),
                "RequestId": fields.get("request_id")})
        if event == "init_failed":
            return self.line(_BY_FUNCTION, {"InitFailures": (1, COUNT)}, {"ErrorType": fields.get("error_type")})
        return ""

    def line(self, dimensions: list[list[str]], metrics: Mapping[str, tuple[float, str]],
             properties: Mapping[str, Any]) -> str:
        """One EMF document as a line: the directive, then ``FunctionName``, the properties that are set, and the
        metric values."""
        directive = self._directive(dimensions, metrics)
        values: dict[str, Any] = {"FunctionName": self.function_name}
        values.update((key, value) for key, value in properties.items() if value is not None)
        values.update((name, value) for name, (value, _) in metrics.items())
        rest = json.dumps(values, separators=(",", ":"), default=str)
        return f'{{"_aws":{{"Timestamp":{int(time.time() * 1000)},"CloudWatchMetrics":{directive}}},{rest[1:]}\n'

    def _directive(self, dimensions: list[list[str]], metrics: Mapping[str, tuple[float, str]]) -> str:
        key = (repr(dimensions), *(f"{name}:{unit}" for name, (_, unit) in metrics.items()))
        directive = self._directives.get(key)
        if directive is None:
            directive = self._directives[key] = json.dumps([{
                "Namespace": self.namespace,
                "Dimensions": dimensions,
                "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
            }], separators=(",", ":"))
        return directive


def configure_metrics(config: Config) -> MetricsRecorder | None:
    """Start (or, with ``LAMBDA_SUPERVISOR_METRICS=off``, stop) turning events into metric lines."""
    recorder = MetricsRecorder(config.metrics_namespace, config.function_name) if config.metrics else None
    events.observer = recorder.observe if recorder is not None else None
    return recorder
