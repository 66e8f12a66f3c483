"""A sample function for `lambda-supervisor demo` and `serve`: one handler that can fail in every way on request.

This file is *user code*: only the worker ever imports it, with this folder as LAMBDA_TASK_ROOT.
Send {"action": "..."} with one of: ok (default), raise, segfault, exit, hang, memory.
"""

import ctypes
import os
import time
from typing import Any

WARM_SINCE = time.time()


def handler(event: Any, context: Any) -> dict[str, Any]:
    action = event.get("action", "ok") if isinstance(event, dict) else "ok"
    if action == "raise":
        raise ValueError("the handler raised, as asked")
    if action == "segfault":
        ctypes.string_at(0)
    if action == "exit":
        os._exit(3)
    if action == "hang":
        time.sleep(3600)
    if action == "memory":
        hoard = []
        while True:
            hoard.append(bytearray(16 * 1024 * 1024))
    return {
        "message": "hello from a warm worker",
        "echo": event,
        "pid": os.getpid(),
        "warm_for_s": round(time.time() - WARM_SINCE, 3),
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
