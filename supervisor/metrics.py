"""CloudWatch Embedded Metric Format: the lifecycle events as metrics, one JSON line each, with no API calls.

CloudWatch Logs turns a log event that is a JSON object with an ``_aws.CloudWatchMetrics`` directive into metrics,
so graphs and alarms on restarts need no code and no permissions. Lines are written to stdout as they are (not
wrapped in a log envelope), one per event that has metrics:

* ``invocation`` (the REPORT line): ``Invocations``, ``Errors``, ``Faults`` (the worker had to be replaced),
  ``Duration``; dimensions ``[FunctionName]``.
* ``worker_replaced``: ``Restarts`` and ``TimeToReady`` (how long the new worker took); dimensions
  ``[FunctionName]`` and ``[FunctionName, Reason]``.
* ``init_failed``: ``InitFailures``; dimensions ``[FunctionName]``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from . import events
from .config import Config

COUNT = "Count"
MILLISECONDS = "Milliseconds"
_BY_FUNCTION = [["FunctionName"]]
_BY_FUNCTION_AND_REASON = [["FunctionName"], ["FunctionName", "Reason"]]


class MetricsRecorder:
    """Turns events into EMF lines on ``out``. Each line is built once, with a single ``json.dumps``."""

    def __init__(self, namespace: str, function_name: str, out: TextIO | None = None) -> None:
        self.namespace = namespace
        self.function_name = function_name
        self._out = out

    def observe(self, event: str, fields: Mapping[str, Any]) -> None:
        if event == "invocation":
            fault = fields.get("fault")
            self.write(_BY_FUNCTION, {
                "Invocations": (1, COUNT),
                "Errors": (0 if fields.get("outcome") == "success" else 1, COUNT),
                "Faults": (1 if fault else 0, COUNT),
                "Duration": (round(float(fields.get("duration_ms", 0.0)), 3), MILLISECONDS),
            }, {"RequestId": fields.get("request_id"), "Outcome": fields.get("outcome"), "Fault": fault})
        elif event == "worker_replaced":
            self.write(_BY_FUNCTION_AND_REASON, {
                "Restarts": (1, COUNT),
                "TimeToReady": (round(float(fields.get("ready_ms", 0.0)), 3), MILLISECONDS),
            }, {"Reason": str(fields.get("reason")), "RequestId": fields.get("request_id")})
        elif event == "init_failed":
            self.write(_BY_FUNCTION, {"InitFailures": (1, COUNT)}, {"ErrorType": fields.get("error_type")})

    def write(self, dimensions: list[list[str]], metrics: Mapping[str, tuple[float, str]],
              properties: Mapping[str, Any]) -> None:
        document: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": dimensions,
                    "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
                }],
            },
            "FunctionName": self.function_name,
        }
        document.update((key, value) for key, value in properties.items() if value is not None)
        document.update((name, value) for name, (value, _) in metrics.items())
        out = self._out or sys.stdout
        out.write(json.dumps(document, separators=(",", ":"), default=str) + "\n")
        out.flush()


def configure_metrics(config: Config) -> MetricsRecorder | None:
    """Start (or, with ``LAMBDA_SUPERVISOR_METRICS=off``, stop) turning events into metric lines."""
    recorder = MetricsRecorder(config.metrics_namespace, config.function_name) if config.metrics else None
    events.observer = recorder.observe if recorder is not None else None
    return recorder
