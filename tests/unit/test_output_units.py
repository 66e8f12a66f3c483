"""Unit tests of the log line formats and of the worker's output streams, on a pipe instead of stdout."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator

import pytest

from lambda_supervisor.shared.logline import json_line, one_line, text_line, timestamp
from lambda_supervisor.worker import output
from lambda_supervisor.worker.log_records import LambdaLogHandler
from lambda_supervisor.worker.output import HandlerOutput, LogStream


def test_timestamps_and_one_line_messages() -> None:
    assert timestamp(0.25) == "1970-01-01T00:00:00.250Z"
    assert one_line("a\nb\r\nc\n") == "a\rb\rc"
    assert one_line("plain") == "plain"
    assert text_line(0.0, "rid", "INFO", "x\ny\n") == "[INFO]\t1970-01-01T00:00:00.000Z\trid\tx\ry\n"
    assert text_line(0.0, None, "INFO", "x") == "[INFO]\t1970-01-01T00:00:00.000Z\t\tx\n"
    record = json.loads(json_line(0.0, None, "INFO", "m", "app", {"level": "ignored", "k": 1}))
    assert record == {"timestamp": "1970-01-01T00:00:00.000Z", "level": "INFO", "message": "m", "logger": "app",
                      "k": 1}


class Pipe:
    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)

    def events(self) -> list[str]:
        try:
            data = os.read(self.read_fd, 1 << 20)
        except BlockingIOError:
            return []
        return data.decode().split("\n")[:-1]


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    made = Pipe()
    yield made
    os.close(made.read_fd)
    os.close(made.write_fd)


def messages(pipe: Pipe) -> list[str]:
    return [line.split("\t", 3)[3] for line in pipe.events()]


def test_writes_are_raw_by_default(pipe: Pipe) -> None:
    stream = LogStream(HandlerOutput("Text", pipe.write_fd), "INFO", "stdout", 1)
    stream.write("partial")
    stream.write(" line\n")
    stream.write("two\nlines\n")
    stream.buffer.write(b"bytes \xff\n")
    assert os.read(pipe.read_fd, 1 << 16) == b"partial line\ntwo\nlines\nbytes \xff\n"


def test_each_write_is_one_event_and_a_lone_newline_closes_the_line(pipe: Pipe) -> None:
    sink = HandlerOutput("Text", pipe.write_fd, tag_output=True)
    stream = LogStream(sink, "INFO", "stdout", 1)
    stream.write("partial")
    stream.write("\n")
    stream.write("\n")  # a deliberate blank line
    stream.write("two\nlines\n")
    stream.buffer.write(b"bytes \xff\n")
    assert messages(pipe) == ["partial", "", "two\rlines", "bytes \\xff"]
    assert stream.fileno() == 1 and not stream.isatty()


def test_print_is_one_write_and_other_files_keep_the_builtin(pipe: Pipe, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = HandlerOutput("Text", pipe.write_fd, tag_output=True)
    sink.request_id = "rid-1"
    monkeypatch.setattr("sys.stdout", LogStream(sink, "INFO", "stdout", 1))
    output._print("a", 1, None, sep=None, end=None)
    output._print("x", "y", sep="-", end="!\n")
    output._print('{"_aws": {}, "n": 1}')
    output._print('{"not": "closed"')
    elsewhere = io.StringIO()
    output._print("kept", file=elsewhere)
    events = pipe.events()
    assert [line.split("\t")[2:] for line in events[:2]] == [["rid-1", "a 1 None"], ["rid-1", "x-y!"]]
    assert events[2] == '{"_aws": {}, "n": 1}', "a JSON object line is never tagged"
    assert events[3].startswith("[INFO]\t") and events[3].endswith('\trid-1\t{"not": "closed"')
    assert elsewhere.getvalue() == "kept\n"


def test_print_exception_is_one_event(pipe: Pipe, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", LogStream(HandlerOutput("Text", pipe.write_fd, tag_output=True), "ERROR",
                                                "stderr", 2))
    try:
        raise ValueError("nope")
    except ValueError as error:
        output._print_exception(error)
        output._print_exception(type(error), error, error.__traceback__, limit=1)
    [first, second] = messages(pipe)
    assert first.startswith("Traceback (most recent call last):\r") and first.endswith("ValueError: nope")
    assert second == first


def _log_through(sink: HandlerOutput, name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(LambdaLogHandler(sink))
    return log


def test_json_records_from_logging(pipe: Pipe) -> None:
    sink = HandlerOutput("JSON", pipe.write_fd)
    sink.request_id, sink.tenant_id = "rid-2", "tenant-7"
    log = _log_through(sink, "unit.json")
    try:
        log.warning("hello %s", "there", extra={"order": 7})
        try:
            {}["k"]
        except KeyError:
            log.exception("failed")
        log.info({"structured": True})
        log.critical("bad")
    finally:
        log.handlers.clear()
    first, second, third, fourth = (json.loads(line) for line in pipe.events())
    assert list(first) == ["timestamp", "level", "message", "logger", "requestId", "tenantId", "order"]
    assert first["message"] == "hello there" and first["level"] == "WARNING" and first["logger"] == "unit.json"
    assert first["requestId"] == "rid-2" and first["tenantId"] == "tenant-7" and first["order"] == 7
    assert second["errorType"] == "KeyError" and second["errorMessage"] == "'k'" and second["stackTrace"]
    assert second["location"].endswith(":test_json_records_from_logging:" + second["location"].rsplit(":", 1)[1])
    assert third["message"] == {"structured": True}, "a dict logged without arguments stays a dict"
    assert fourth["level"] == "CRITICAL"


def test_text_records_in_lambdas_layout(pipe: Pipe) -> None:
    sink = HandlerOutput("Text", pipe.write_fd)
    log = _log_through(sink, "unit.text")
    try:
        log.info("before any invocation")
        sink.request_id = "rid-3"
        log.warning("two\nlines")
        custom = logging.Formatter("%(levelname)s %(aws_request_id)s %(message)s")
        log.handlers[0].setFormatter(custom)
        log.error("mine")
    finally:
        log.handlers.clear()
    first, second, third = pipe.events()
    assert re.fullmatch(r"\[INFO\]\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t\tbefore any invocation", first)
    assert second.startswith("[WARNING]\t") and second.endswith("\trid-3\ttwo\rlines"), "one event"
    assert third == "ERROR rid-3 mine", "a formatter the user sets is honoured, with the request id"


def _record_pairs() -> list[tuple[logging.LogRecord, logging.LogRecord]]:
    """The same records twice, one for each formatter, made at the same instant (a millisecond may pass between
    the two lists, and the timestamp is part of the line)."""
    pairs = list(zip(_records(), _records(), strict=True))
    for theirs, ours in pairs:
        ours.created, ours.msecs = theirs.created, theirs.msecs
    return pairs


def _records() -> list[logging.LogRecord]:
    """Records of every kind a handler logs, made fresh for each formatter (awslambdaric's changes the record)."""
    try:
        {}["k"]
    except KeyError:
        exc_info = sys.exc_info()
    made = [
        logging.LogRecord("app", logging.INFO, "/x/app.py", 3, "hello %s", ("there",), None, "handler"),
        logging.LogRecord("app", logging.WARNING, "/x/app.py", 4, {"structured": True}, None, None, "handler"),
        logging.LogRecord("app", logging.ERROR, "/x/app.py", 5, "failed", None, exc_info, "handler"),
        logging.LogRecord("app", 5, "/x/app.py", 6, "trace level", None, None, "handler"),
        logging.LogRecord("app", 45, "/x/app.py", 7, "between", None, None, "handler"),
        logging.LogRecord("app", logging.CRITICAL, "/x/app.py", 8, "caf\u00e9 %d", (1,), None, "handler"),
    ]
    made[0].order, made[0].when = 7, {1, 2}  # extra fields, one that JSON cannot encode
    for record in made:
        record.aws_request_id = "rid-9"
    made[1].tenant_id = "tenant-1"
    return made


@pytest.mark.skipif(importlib.util.find_spec("awslambdaric") is None, reason="awslambdaric not installed")
def test_json_records_are_awslambdarics_byte_for_byte() -> None:
    from awslambdaric.lambda_runtime_log_utils import JsonFormatter

    from lambda_supervisor.worker.log_records import JsonRecordFormatter

    theirs, ours = JsonFormatter(), JsonRecordFormatter()
    theirs.converter = time.gmtime
    for their_record, our_record in _record_pairs():
        assert ours.format(our_record) == theirs.format(their_record)


@pytest.mark.skipif(importlib.util.find_spec("awslambdaric") is None, reason="awslambdaric not installed")
def test_text_records_are_awslambdarics_byte_for_byte() -> None:
    from awslambdaric.bootstrap import _setup_logging
    from awslambdaric.lambda_runtime_log_utils import LogFormat

    from lambda_supervisor.worker.log_records import text_formatter

    class Sink:
        def log(self, msg: str, frame_type: bytes | None = None) -> None:
            pass

    root = logging.getLogger()
    before = list(root.handlers)
    _setup_logging(LogFormat.TEXT, "", Sink())
    try:
        theirs = root.handlers[-1].formatter
    finally:
        root.handlers[:] = before
        root.setLevel(logging.WARNING)
    assert theirs is not None
    for their_record, our_record in _record_pairs():
        assert text_formatter().format(our_record) == theirs.format(their_record)
