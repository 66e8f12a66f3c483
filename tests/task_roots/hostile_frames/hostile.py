"""Handlers that write their own frames to the worker's reply pipe, with header values aimed at the HTTP post."""

import json
import os
import stat
import struct
import time


def _worker_out_fd():
    """The write end of the worker's reply pipe: the one write-only FIFO besides stdout and stderr."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd > 2 and stat.S_ISFIFO(os.fstat(fd).st_mode):
                with open(f"/proc/self/fdinfo/{fd}") as info:
                    flags = int(info.read().split("flags:")[1].split()[0], 8)
                if flags & os.O_ACCMODE == os.O_WRONLY:
                    return fd
        except OSError:
            continue
    raise RuntimeError("no reply pipe found")


def _send(header, payload):
    raw = json.dumps(header).encode()
    os.write(_worker_out_fd(), struct.pack(">4sII", b"LSF1", len(raw), len(payload)) + raw + payload)
    time.sleep(3600)  # the frame above is this request's reply; never send the real one


def content_type(event, context):
    header = {"type": "result", "request_id": context.aws_request_id, "content_type": event["content_type"]}
    _send(header, b"<p>hi</p>")


_ERROR = json.dumps({"errorType": "Hostile", "errorMessage": "m", "stackTrace": []}).encode()


def xray_cause(event, context):
    frame = {"label": "l\r\nX-Injected: 1", "path": "\u00e9\u2028" * 1000, "line": 7}
    cause = {
        "working_directory": "/var/task\r\nX-Injected: 1",
        "exceptions": [{"message": "\r\n" * 5000, "type": "T\n\u00e9", "stack": [frame] * 3}],
        "paths": ["/etc/passwd"],
    }
    _send({"type": "error", "request_id": context.aws_request_id, "error_type": "Hostile", "fatal": False,
           "xray_cause": cause}, _ERROR)


def xray_cause_wrong_types(event, context):
    cause = {"working_directory": "/w", "exceptions": [{"message": "m", "type": "T", "stack": [{"line": "1"}]}]}
    _send({"type": "error", "request_id": context.aws_request_id, "error_type": "Hostile", "fatal": False,
           "xray_cause": cause}, _ERROR)
