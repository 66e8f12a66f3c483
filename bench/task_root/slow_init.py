"""A function whose init takes 500 ms, for the crash -> next-served scenario."""

import os
import time

time.sleep(0.5)


def handler(event, context):
    if event.get("crash"):
        os._exit(1)
    return {"pid": os.getpid()}
