"""Handlers the benchmark runs. Cheap to import; only the worker (or the runtime under test) imports this file."""

import os
import time


def noop(event, context):
    return {}


def echo_data(event, context):
    """Return the event's 1 MiB string, so the response is as large as the event."""
    return event["data"]


def crash(event, context):
    if event.get("crash"):
        os._exit(1)
    return {"pid": os.getpid()}


def hang(event, context):
    while True:
        time.sleep(1)


def _stamp(path):
    stamp = time.time()
    with open(path + ".tmp", "w") as file:
        file.write(repr(stamp))
    os.rename(path + ".tmp", path)


def _own_rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def allocate(event, context):
    """Cross the memory limit in one small step, note when, then wait to be killed.

    First fill memory to ``margin_mb`` below the limit (still allowed), then allocate ``step_mb`` more in one filled
    buffer: the limit is crossed within that last step, a millisecond or two before the "after" stamp. A stamp taken
    just before the step stands in when the supervisor's memory check wins that race.
    """
    base = b"x" * (int(event["limit_mb"] - _own_rss_mb() - event["margin_mb"]) * 1024 * 1024)
    _stamp(event["stamp_file"] + ".before")
    step = b"y" * (event["step_mb"] * 1024 * 1024)
    _stamp(event["stamp_file"])
    time.sleep(60)
    return len(base) + len(step)
