"""Handlers for the concurrency tests of the emulator and of ``invoke --concurrency``."""

import os
import time


def handler(event, context):
    """Sleep ``sleep_s`` seconds, then say who served it and what it was asked."""
    time.sleep(float(event.get("sleep_s", 0)))
    return {"pid": os.getpid(), "echo": event.get("echo"),
            "max_concurrency": os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY")}
