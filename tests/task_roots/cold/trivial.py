"""A trivial function for cold-start tests: its init can hold HOLD_MB of memory (touched, so it is resident), and
the handler says which process served it and at what scheduling policy."""

import os

HOLD = b"\x01" * (int(os.environ.get("HOLD_MB", "0")) * 1024 * 1024)


def handler(event, context):
    if isinstance(event, dict) and event.get("action") == "crash":
        os._exit(9)
    return {"pid": os.getpid(), "policy": os.sched_getscheduler(0), "held": len(HOLD)}
