"""A handler whose init is observable: each init appends its pid to $INIT_LOG, and can be told to fail."""

import os
import time

from lambda_supervisor.worker.soft_timeout import SoftTimeoutError

if os.environ.get("INIT_LOG"):
    with open(os.environ["INIT_LOG"], "a") as log:
        log.write(f"{os.getpid()}\n")
    # FAIL_LATER_INITS: the first init succeeds, every later one fails (a dependency that went away)
    if os.environ.get("FAIL_LATER_INITS") and len(open(os.environ["INIT_LOG"]).read().split()) > 1:
        raise RuntimeError("init fails from now on")

# BREAK_INIT_FILE: once the test creates this file, every init fails (the standby started after that, say)
if os.environ.get("BREAK_INIT_FILE") and os.path.exists(os.environ["BREAK_INIT_FILE"]):
    raise RuntimeError("init is broken from now on")

HOARD = []

# READY_LOG: each init that got this far (it can no longer fail) appends its pid
if os.environ.get("READY_LOG"):
    with open(os.environ["READY_LOG"], "a") as log:
        log.write(f"{os.getpid()}\n")


def handler(event, context):
    action = event.get("action") if isinstance(event, dict) else None
    if action == "crash":
        os._exit(9)
    if action == "grow":
        HOARD.append(bytearray(80 * 1024 * 1024))
    if action == "soft_cleanup":
        try:
            time.sleep(60)
        except SoftTimeoutError:
            with open(event["marker"], "w") as marker:
                marker.write(str(context.get_remaining_time_in_millis()))
            raise
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "soft_swallow":
        for _ in range(600):
            try:
                time.sleep(0.1)
            except SoftTimeoutError:
                pass
    return {"pid": os.getpid(), "ppid": os.getppid()}
