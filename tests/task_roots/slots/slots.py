"""Handlers for the concurrency (Managed Instances) tests: each event says what to do. Only workers import this."""

import os
import time

#: Memory the init holds (MB), shared copy-on-write by workers forked from one template.
INIT_HOLD = bytearray(int(os.environ.get("SLOTS_INIT_HOLD_MB", "0")) * 1024 * 1024)
for _page in range(0, len(INIT_HOLD), 4096):
    INIT_HOLD[_page] = 1  # touched: resident


def act(event, context):
    action = event.get("action", "ok")
    started = time.time()
    if "started_file" in event:  # tell the test the request is running
        with open(event["started_file"], "w") as running:
            running.write(str(os.getpid()))
    if action == "sleep":
        time.sleep(event.get("seconds", 1.0))
    elif action == "crash":
        os._exit(3)
    elif action == "hang":
        time.sleep(3600)
    elif action == "oom":
        hoard = []
        while True:
            hoard.append(bytearray(16 * 1024 * 1024))
    elif action == "hold":  # hold this much memory, then wait
        hoard = bytearray(event["mb"] * 1024 * 1024)
        for page in range(0, len(hoard), 4096):
            hoard[page] = 1
        if "ready_file" in event:  # tell the test the memory is held
            with open(event["ready_file"], "w") as ready:
                ready.write(str(os.getpid()))
        time.sleep(event.get("seconds", 3600))
    elif action == "print":
        print(f"printed by {context.aws_request_id}", flush=True)
    return {"pid": os.getpid(), "request_id": context.aws_request_id, "started": started, "ended": time.time()}
