"""What a handler's output and the supervisor's lifecycle look like in the log, in Text and in JSON format."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from conftest import TASK_ROOTS, StartRuntime, clean_environment
from lambda_supervisor.local.emulator.server import RuntimeApiEmulator

LOGS = TASK_ROOTS / "logs"
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


EMF_LINE = ('{"_aws":{"Timestamp":1795425164000,"CloudWatchMetrics":[{"Namespace":"App","Dimensions":[["service"]],'
            '"Metrics":[{"Name":"Orders","Unit":"Count"}]}]},"service":"shop","Orders":1}')


def lines(log: str) -> list[str]:
    """Log events as CloudWatch would split them: on "\\n" only (a "\\r" stays inside its event)."""
    return [line for line in log.split("\n") if line]


def tagged(log: str, request_id: str) -> list[tuple[str, str]]:
    """(level, message) of the Text lines in Lambda's layout, [LEVEL]<TAB>time<TAB>request id<TAB>message, of
    ``request_id``."""
    found = []
    for line in lines(log):
        parts = line.split("\t", 3)
        if len(parts) == 4 and parts[2] == request_id and parts[0].startswith("["):
            assert re.fullmatch(TIMESTAMP, parts[1]), line
            found.append((parts[0].strip("[]"), parts[3]))
    return found


def json_lines(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(log) if line.startswith("{")]


def test_text_print_is_raw_and_logging_records_are_in_lambdas_layout(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("logs.talk", task_root=LOGS)
    record = runtime.invoke({"n": 1})
    assert record.json() == "done"
    log = runtime.log()
    events = lines(log)
    for raw in ("hello from print 1", "two+parts", "no newline", "to stderr", "raw bytes", "line one", "line two",
                "printed during init", "Traceback (most recent call last):", EMF_LINE):
        assert raw in events, f"{raw!r} is written as it is, as on Lambda"
    records = tagged(log, record.request_id)
    assert ("WARNING", "warning record 7") in records
    assert not any("debug record" in message or "info record" in message for _, message in records), \
        "in Text format the root logger keeps Python's default level, WARNING, as on Lambda"
    logged = [message for level, message in records if message.startswith("with a traceback")]
    assert len(logged) == 1 and "\rTraceback (most recent call last):\r" in logged[0], "a record is one event"
    assert logged[0].endswith("KeyError: 'missing'")
    assert not any(message in ("hello from print 1", "to stderr") for _, message in records), "print is untagged"


def test_tagged_output_is_opt_in_and_json_objects_stay_untouched(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("logs.talk", task_root=LOGS, env={"LAMBDA_SUPERVISOR_TAG_OUTPUT": "true"})
    record = runtime.invoke({"n": 1})
    log = runtime.log()
    events = tagged(log, record.request_id)
    assert ("INFO", "hello from print 1") in events
    assert ("INFO", "two+parts") in events, "one print call is one event"
    assert ("INFO", "no newline") in events and ("INFO", "") not in events
    assert ("ERROR", "to stderr") in events
    assert ("INFO", "raw bytes") in events
    assert ("WARNING", "warning record 7") in events
    assert ("INFO", "line one\rline two") in events, "a multi-line message is one event, newlines as \\r"
    printed = [message for level, message in events if level == "ERROR" and message.startswith("Traceback")]
    assert len(printed) == 1, "traceback.print_exc() is one event"
    assert EMF_LINE in lines(log), "a JSON object line (EMF) is never wrapped"
    assert re.search(rf"^\[INFO\]\t{TIMESTAMP}\t\tprinted during init$", log, re.MULTILINE), \
        "output outside an invocation has an empty request id"
    runtime = start_runtime("logs.talk", task_root=LOGS, env={"LAMBDA_SUPERVISOR_TAG_OUTPUT": "true",
                                                              "AWS_LAMBDA_LOG_FORMAT": "JSON"})
    record = runtime.invoke({"n": 5})
    objects = json_lines(runtime.log())
    mine = {(o.get("logger"), o.get("level"), o.get("message")) for o in objects
            if o.get("requestId") == record.request_id}
    assert ("stdout", "INFO", "hello from print 5") in mine and ("stderr", "ERROR", "to stderr") in mine
    assert ("stdout", "INFO", "line one\nline two") in mine
    assert EMF_LINE in lines(runtime.log())


@pytest.mark.parametrize(
    ("handler", "words", "exit"),
    [
        ("logs.print_then_exit", "last words before os._exit", "exit status 5"),
        ("logs.print_then_segfault", "last words before the segfault", "signal SIGSEGV"),
    ],
)
def test_nothing_printed_is_lost_when_the_worker_dies_right_after(
    start_runtime: StartRuntime, handler: str, words: str, exit: str
) -> None:
    runtime = start_runtime(handler, task_root=LOGS)
    record = runtime.invoke()
    assert record.error.error_type == "Runtime.ExitError"
    assert exit in (record.error.error_message or "")
    assert words in lines(runtime.log())


def test_a_segfault_leaves_the_python_stack_in_the_log(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("logs.print_then_segfault", task_root=LOGS)
    runtime.invoke()
    log = runtime.log()
    assert "Fatal Python error: Segmentation fault" in log
    assert 'logs.py", line' in log and "in print_then_segfault" in log


def test_output_from_c_code_and_child_processes_is_not_lost(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("logs.c_printf_then_exit", task_root=LOGS)
    assert runtime.invoke().error.error_type == "Runtime.ExitError"
    assert "printf from C\n" in runtime.log(), "C stdio is unbuffered in the worker: it survives os._exit"
    runtime = start_runtime("logs.child_process", task_root=LOGS)
    assert runtime.invoke().json() == "ok"
    assert "from a child process\n" in runtime.log()


def test_the_application_log_level_filters_logging_records(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("logs.talk", task_root=LOGS, env={"AWS_LAMBDA_LOG_LEVEL": "DEBUG"})
    record = runtime.invoke({"n": 2})
    events = tagged(runtime.log(), record.request_id)
    assert ("DEBUG", "debug record") in events and ("INFO", "info record") in events
    runtime = start_runtime("logs.talk", task_root=LOGS, env={"AWS_LAMBDA_LOG_LEVEL": "ERROR"})
    record = runtime.invoke({"n": 3})
    events = tagged(runtime.log(), record.request_id)
    assert not any("record" in message and level != "ERROR" for level, message in events)
    assert "hello from print 3" in lines(runtime.log()), "print is never filtered"
    runtime = start_runtime("logs.talk", task_root=LOGS, env={"AWS_LAMBDA_LOG_LEVEL": "TRACE"})
    record = runtime.invoke({"n": 4})
    assert ("DEBUG", "debug record") in tagged(runtime.log(), record.request_id), "TRACE is DEBUG, as awslambdaric"


def test_json_format_for_logging_records_and_supervisor_events(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("logs.talk", task_root=LOGS, env={"AWS_LAMBDA_LOG_FORMAT": "JSON"})
    record = runtime.invoke({"n": 4})
    log = runtime.log()
    assert "hello from print 4" in lines(log) and "line one" in lines(log), "stdout stays plain text"
    assert EMF_LINE in lines(log)
    objects = json_lines(log)
    application = [o for o in objects if "_aws" not in o and o.get("logger") != "lambda-supervisor"]
    mine = [o for o in application if o.get("requestId") == record.request_id]
    info = next(o for o in mine if o["message"] == "info record")
    assert list(info) == ["timestamp", "level", "message", "logger", "requestId"], "awslambdaric's fields"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["timestamp"]), "to the second"
    assert info["logger"] == "app" and info["level"] == "INFO", "JSON format defaults the application level to INFO"
    assert not any(o["message"] == "debug record" for o in mine)
    warning = next(o for o in mine if o["message"] == "warning record 7")
    assert warning["tenant"] == "t1", "extra fields of a logging record are kept"
    failure = next(o for o in mine if o["message"] == "with a traceback")
    assert list(failure)[:9] == ["timestamp", "level", "message", "logger", "stackTrace", "errorType", "errorMessage",
                                 "requestId", "location"]
    assert failure["errorType"] == "KeyError" and failure["stackTrace"]
    assert re.search(r"logs\.py:talk:\d+$", failure["location"])

    supervisor = [o for o in objects if o.get("logger") == "lambda-supervisor"]
    ready = next(o for o in supervisor if o.get("event") == "worker_ready")
    expected_strategy = os.environ.get("TEST_RESPAWN_STRATEGY", "fork")  # auto forks from a template
    assert ready["fields"]["pid"] > 0 and ready["fields"]["init_ms"] > 0
    assert ready["fields"]["strategy"] == expected_strategy
    assert not any(o.get("event") == "invocation" for o in supervisor), "the REPORT line is opt-in"
    runtime = start_runtime("logs.talk", task_root=LOGS, env={"AWS_LAMBDA_LOG_FORMAT": "JSON",
                                                              "LAMBDA_SUPERVISOR_REPORT": "on"})
    record = runtime.invoke({"n": 4})
    report = next(o for o in json_lines(runtime.wait_log('"event": "invocation"')) if o.get("event") == "invocation")
    assert report["requestId"] == record.request_id
    assert report["message"].startswith(f"REPORT RequestId: {record.request_id}\tDuration: ")
    assert report["fields"]["outcome"] == "success" and report["fields"]["fault"] is None
    assert report["fields"]["duration_ms"] > 0 and report["fields"]["max_rss_mb"] > 0


def test_json_fault_lines_carry_their_fields(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("logs.print_then_segfault", task_root=LOGS, env={"AWS_LAMBDA_LOG_FORMAT": "JSON"})
    record = runtime.invoke()
    objects = json_lines(runtime.log())
    replaced = next(o for o in objects if o.get("event") == "worker_replaced")
    assert replaced["requestId"] == record.request_id
    fields = replaced["fields"]
    assert fields["reason"] == "crash" and fields["exit"] == "signal SIGSEGV" and fields["served"] == 1
    assert fields["peak_rss_mb"] > 0 and fields["ready_ms"] > 0 and fields["new_pid"] != fields["old_pid"]


def test_the_report_line_in_text(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("logs.fail", task_root=LOGS, env={"LAMBDA_SUPERVISOR_REPORT": "on"})
    record = runtime.invoke()
    pattern = (rf"\tINFO\tlambda-supervisor\tREPORT RequestId: {record.request_id}\tDuration: [\d.]+ ms\t"
               r"Worker PID: (\d+)\tMax RSS: ([\d.]+) MB\tOutcome: RuntimeError$")
    match = re.search(pattern, runtime.wait_log("REPORT RequestId: "), re.MULTILINE)
    assert match, runtime.log()
    assert float(match.group(2)) > 1
    crash = start_runtime("logs.print_then_exit", task_root=LOGS, env={"LAMBDA_SUPERVISOR_REPORT": "on"})
    record = crash.invoke()
    assert re.search(rf"REPORT RequestId: {record.request_id}\t.*\tOutcome: Runtime.ExitError\tFault: crash$",
                     crash.wait_log("REPORT RequestId: "), re.MULTILINE)


@pytest.mark.parametrize(("variable", "value"), [("AWS_LAMBDA_LOG_FORMAT", "xml"), ("AWS_LAMBDA_LOG_LEVEL", "LOUD")])
def test_an_invalid_log_setting_is_a_configuration_error(start_runtime: StartRuntime, variable: str,
                                                         value: str) -> None:
    runtime = start_runtime(env={variable: value}, wait_ready=False)
    posted = runtime.emulator.wait_init_error(60)
    assert posted.error_type == "Runtime.InvalidConfiguration"
    assert variable in (posted.error_message or "")


@pytest.mark.parametrize("log_format", ["JSON", "Text"])
def test_a_supervisor_line_starts_on_its_own_line_after_a_childs_partial_line(start_runtime: StartRuntime,
                                                                               log_format: str) -> None:
    """The REPORT line follows the child's "downloading 10%\\r" at once; it must still be a line of its own (in
    JSON, a JSON object CloudWatch can parse; its metric line too)."""
    runtime = start_runtime("logs.child_partial_line", task_root=LOGS,
                            env={"AWS_LAMBDA_LOG_FORMAT": log_format, "LAMBDA_SUPERVISOR_REPORT": "on"})
    record = runtime.invoke()
    assert record.json() == "ok"
    log = runtime.wait_log(f"REPORT RequestId: {record.request_id}")
    assert "downloading 10%\r" in log
    report = [line for line in lines(log) if f"REPORT RequestId: {record.request_id}" in line]
    assert len(report) == 1, log
    if log_format == "JSON":
        assert json.loads(report[0])["event"] == "invocation", report[0]
        assert all(json.loads(line) for line in lines(log) if "_aws" in line), "metric lines stay JSON too"
    else:
        assert re.match(TIMESTAMP + r"\tINFO\tlambda-supervisor\tREPORT ", report[0]), report[0]
    assert "\n\n" not in log, "on a file, a newline is only added when the last byte is not one"


def test_on_a_pipe_as_on_lambda_a_supervisor_line_also_starts_on_its_own_line() -> None:
    """On Lambda stdout is a pipe, whose last byte cannot be read back: the line must still be whole."""
    with RuntimeApiEmulator(function_timeout_s=10) as emulator:
        environment = clean_environment()
        environment.update(AWS_LAMBDA_RUNTIME_API=emulator.address, AWS_LAMBDA_LOG_FORMAT="JSON",
                           LAMBDA_SUPERVISOR_REPORT="on")
        process = subprocess.Popen(
            [sys.executable, "-m", "lambda_supervisor.supervisor", "run", "logs.child_partial_line", "--task-root",
             str(LOGS)], env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            emulator.wait_next_polled(1, timeout=60)
            record = emulator.invoke({}, wait=60)
            emulator.wait_next_polled(2, timeout=60)
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=30)
    log = output.decode()
    assert "downloading 10%\r" in log
    report = [line for line in lines(log) if f"REPORT RequestId: {record.request_id}" in line]
    assert len(report) == 1 and json.loads(report[0])["event"] == "invocation", log
