"""The handler of bench/mi_throughput.py: what it does is in the event, so one runtime serves every scenario.

``{"sleep_ms": 50}`` waits (I/O-bound), ``{"cpu_ms": 50}`` burns that much CPU time of its own thread (CPU-bound,
a fixed amount of work however busy the machine is), ``{"crash": true}`` ends its process at once.
"""

import os
import time


def handler(event, context):
    if event.get("crash"):
        os._exit(1)
    cpu_ms = event.get("cpu_ms")
    if cpu_ms:
        end = time.thread_time() + cpu_ms / 1000
        while time.thread_time() < end:
            pass
    sleep_ms = event.get("sleep_ms")
    if sleep_ms:
        time.sleep(sleep_ms / 1000)
    return {"pid": os.getpid()}
