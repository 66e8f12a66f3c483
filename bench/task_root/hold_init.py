"""A function whose init holds HOLD_INIT_MB (default 50) of touched memory, for the concurrency bench."""

import os

HELD = bytearray(int(os.environ.get("HOLD_INIT_MB", "50")) * 1024 * 1024)
for _page in range(0, len(HELD), 4096):
    HELD[_page] = 1


def handler(event, context):
    return {"pid": os.getpid()}
