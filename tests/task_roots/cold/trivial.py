"""A trivial function for cold-start tests: its init can take INIT_SLEEP_S and hold HOLD_MB of memory (touched, so
it is resident), and the handler says which process served it and at what scheduling policy."""

import os
import time

time.sleep(float(os.environ.get("INIT_SLEEP_S", "0")))
HOLD = b"\x01" * (int(os.environ.get("HOLD_MB", "0")) * 1024 * 1024)

if os.environ.get("READY_LOG"):  # each init that got this far appends its pid
    with open(os.environ["READY_LOG"], "a") as log:
        log.write(f"{os.getpid()}\n")


def handler(event, context):
    if isinstance(event, dict) and event.get("action") == "crash":
        os._exit(9)
    return {"pid": os.getpid(), "policy": os.sched_getscheduler(0), "held": len(HOLD)}
