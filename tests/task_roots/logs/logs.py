"""Handlers that write output every way a handler can, for the log tests. Only the worker imports this file."""

import ctypes
import json
import logging
import os
import subprocess
import sys
import traceback

logger = logging.getLogger("app")
print("printed during init")


def talk(event, context):
    print("hello from print", event.get("n"))
    print("two", "parts", sep="+")
    sys.stdout.write("no newline")
    sys.stdout.write("\n")
    sys.stderr.write("to stderr\n")
    sys.stdout.buffer.write(b"raw bytes\n")
    logger.debug("debug record")
    logger.info("info record")
    logger.warning("warning record %s", 7, extra={"tenant": "t1"})
    try:
        raise KeyError("missing")
    except KeyError:
        logger.exception("with a traceback")
        traceback.print_exc()
    print("line one\nline two")
    print(json.dumps({"_aws": {"Timestamp": 1795425164000, "CloudWatchMetrics": [
        {"Namespace": "App", "Dimensions": [["service"]], "Metrics": [{"Name": "Orders", "Unit": "Count"}]}]},
        "service": "shop", "Orders": 1}, separators=(",", ":")))
    return "done"


def print_then_exit(event, context):
    print("last words before os._exit")
    os._exit(5)


def print_then_segfault(event, context):
    print("last words before the segfault")
    ctypes.string_at(0)


def c_printf_then_exit(event, context):
    libc = ctypes.CDLL(None)
    libc.printf(b"printf from C\n")
    os._exit(6)


def child_process(event, context):
    subprocess.run([sys.executable, "-c", "print('from a child process')"], check=True)
    return "ok"


def fail(event, context):
    raise RuntimeError("handler failed")


def child_partial_line(event, context):
    """A child process leaves a progress line without its newline on the shared stdout."""
    subprocess.run([sys.executable, "-c", "import os; os.write(1, b'downloading 10%\\r')"], check=True)
    return "ok"
