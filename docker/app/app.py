"""The sample function of docker/Dockerfile: logs what it does, and fails on request to show the supervisor at work.

Send {"action": "..."} with one of: ok (the default), raise, crash (a segfault), exit (os._exit), hang.
"""

import ctypes
import logging
import os
import time
from typing import Any

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)
STARTED = time.time()


def handler(event: Any, context: Any) -> dict[str, Any]:
    action = event.get("action", "ok") if isinstance(event, dict) else "ok"
    logger.info("handling %s in worker %d", action, os.getpid())
    print(f"time left: {context.get_remaining_time_in_millis()} ms")
    if action == "raise":
        raise ValueError("raised on request")
    if action == "crash":
        ctypes.string_at(0)
    if action == "exit":
        os._exit(3)
    if action == "hang":
        time.sleep(3600)
    return {"action": action, "pid": os.getpid(), "warm_for_s": round(time.time() - STARTED, 3),
            "request_id": context.aws_request_id}
