"""CloudWatch Embedded Metric Format lines: checked against the EMF specification's structure, end to end."""

from __future__ import annotations

import json
import re
from typing import Any

from conftest import TASK_ROOTS, StartRuntime

#: The per-invocation REPORT line and its metrics are opt-in.
REPORT = {"LAMBDA_SUPERVISOR_REPORT": "on"}
UNITS = {"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Count", "Percent", "None"}


def emf_documents(log: str) -> list[dict[str, Any]]:
    """Every log line that CloudWatch would treat as EMF, each checked to be valid EMF."""
    documents = []
    for line in log.split("\n"):
        if not line.startswith("{"):
            continue
        document = json.loads(line)
        if "_aws" in document:
            assert_valid_emf(document)
            documents.append(document)
    return documents


def assert_valid_emf(document: dict[str, Any]) -> None:
    metadata = document["_aws"]
    assert isinstance(metadata["Timestamp"], int) and metadata["Timestamp"] > 1_600_000_000_000
    directives = metadata["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for directive in directives:
        assert isinstance(directive["Namespace"], str) and 0 < len(directive["Namespace"]) <= 255
        dimension_sets = directive["Dimensions"]
        assert isinstance(dimension_sets, list) and dimension_sets
        for dimension_set in dimension_sets:
            assert isinstance(dimension_set, list) and 0 < len(dimension_set) <= 30
            for name in dimension_set:
                assert isinstance(document.get(name), str) and document[name], f"dimension {name} needs a value"
        metrics = directive["Metrics"]
        assert isinstance(metrics, list) and 0 < len(metrics) <= 100
        for metric in metrics:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"}
            assert metric["Unit"] in UNITS
            value = document.get(metric["Name"])
            assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{metric['Name']} has no value"


def by_metric(documents: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [d for d in documents if any(m["Name"] == name for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"])]


def test_invocations_faults_and_restarts_by_reason(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("logs.print_then_exit", task_root=TASK_ROOTS / "logs", env=REPORT)
    first = runtime.invoke()
    second = runtime.invoke()
    documents = emf_documents(runtime.log())
    invocations = by_metric(documents, "Invocations")
    assert [d["RequestId"] for d in invocations] == [first.request_id, second.request_id]
    for document in invocations:
        directive = document["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "LambdaSupervisor"
        assert directive["Dimensions"] == [["FunctionName"]]
        assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
            "Invocations": "Count", "Errors": "Count", "Faults": "Count", "Duration": "Milliseconds"}
        assert document["FunctionName"] == "test-function"
        assert (document["Invocations"], document["Errors"], document["Faults"]) == (1, 1, 1)
        assert document["Outcome"] == "Runtime.ExitError" and document["Fault"] == "crash"
    restarts = by_metric(documents, "Restarts")
    assert len(restarts) == 2
    for document in restarts:
        directive = document["_aws"]["CloudWatchMetrics"][0]
        assert directive["Dimensions"] == [["FunctionName"], ["FunctionName", "Reason"]]
        assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {"Restarts": "Count",
                                                                       "TimeToReady": "Milliseconds"}
        assert document["Reason"] == "crash" and document["Restarts"] == 1 and document["TimeToReady"] > 0


def test_a_success_counts_no_error_and_the_namespace_is_configurable(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.echo", env={"LAMBDA_SUPERVISOR_METRICS_NAMESPACE": "My/App",
                                                         "LAMBDA_SUPERVISOR_REPORT": "on"})
    record = runtime.invoke({})
    [document] = emf_documents(runtime.log())
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "My/App"
    assert document["RequestId"] == record.request_id
    assert (document["Invocations"], document["Errors"], document["Faults"]) == (1, 0, 0)
    assert document["Outcome"] == "success" and "Fault" not in document


def test_emf_lines_stay_raw_json_in_the_json_log_format(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.echo", env={"AWS_LAMBDA_LOG_FORMAT": "JSON", "LAMBDA_SUPERVISOR_REPORT": "on"})
    runtime.invoke({})
    assert len(by_metric(emf_documents(runtime.log()), "Invocations")) == 1


def test_recycling_counts_as_a_restart_with_its_reason(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.pid", env={"LAMBDA_SUPERVISOR_MAX_INVOCATIONS": "1"})
    runtime.invoke()
    [restart] = by_metric(emf_documents(runtime.log()), "Restarts")
    assert restart["Reason"] == "recycle-max-invocations"


def test_metrics_can_be_switched_off(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.os_exit", env={"LAMBDA_SUPERVISOR_METRICS": "off"})
    runtime.invoke()
    log = runtime.log()
    assert "worker replaced: reason=crash" in log
    assert '"_aws"' not in log


def test_an_init_failure_is_counted(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.no_such_function", wait_ready=False)
    runtime.wait_exit()
    [document] = by_metric(emf_documents(runtime.log()), "InitFailures")
    assert document["InitFailures"] == 1 and document["ErrorType"] == "Runtime.HandlerNotFound"


def test_metrics_do_not_depend_on_the_log_level(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("faults.os_exit", env={"LAMBDA_SUPERVISOR_LOG_LEVEL": "ERROR", **REPORT})
    runtime.invoke()
    log = runtime.log()
    assert "REPORT RequestId" not in log and "worker replaced" not in log
    documents = emf_documents(log)
    assert len(by_metric(documents, "Invocations")) == 1 and len(by_metric(documents, "Restarts")) == 1


def test_by_default_only_what_lambda_cannot_see_is_logged(start_runtime: StartRuntime) -> None:
    """No REPORT line and no per-invocation metrics by default (Lambda writes its own REPORT line), and at the
    default level, for a healthy function from its start to its stop, only the one line that says which respawn
    strategy the memory rule chose; a fault still gets its lines and its restart metric."""
    default_level = {"LAMBDA_SUPERVISOR_LOG_LEVEL": "INFO"}
    runtime = start_runtime("faults.echo", env=default_level)
    runtime.invoke({})
    runtime.invoke({})
    assert runtime.stop() == 0
    log = runtime.log()
    assert "REPORT RequestId" not in log and not emf_documents(log)
    supervisor_lines = [line for line in log.splitlines() if "lambda-supervisor" in line]
    # (none when a strategy is set explicitly, as TEST_RESPAWN_STRATEGY does)
    assert len(supervisor_lines) <= 1 and all("respawn strategy chosen: strategy=" in line
                                              for line in supervisor_lines), log
    crash = start_runtime("faults.os_exit", env=default_level)
    record = crash.invoke()
    log = crash.log()
    assert "REPORT RequestId" not in log and not by_metric(emf_documents(log), "Invocations")
    assert f"invocation failed: request_id={record.request_id}" in log and "worker replaced: reason=crash" in log
    assert len(by_metric(emf_documents(log), "Restarts")) == 1


def test_a_handler_exception_is_no_supervisor_line_by_default(start_runtime: StartRuntime) -> None:
    """The worker logs the exception as awslambdaric does; the supervisor adds nothing for it."""
    runtime = start_runtime("logs.fail", task_root=TASK_ROOTS / "logs")
    assert runtime.invoke().error.error_type == "RuntimeError"
    log = runtime.log()
    assert "[ERROR] RuntimeError: handler failed" in log
    after_ready = log.split("worker ready", 1)[1]
    assert not re.search(r"\t(INFO|WARNING|ERROR)\tlambda-supervisor\t", after_ready) and '"_aws"' not in log
