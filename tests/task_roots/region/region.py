"""Handlers for the shared-memory region large payloads cross: echoes, and a worker that lies about it."""

import hashlib
import json
import os
import stat
import struct
import time

REGION = "/memfd:lambda-supervisor-payload"


def echo(event, context):
    """The event as it was received (large events and results cross the region)."""
    return event


def crash_or_echo(event, context):
    """Exit at once when asked (a crash the supervisor replaces the worker for), else echo with this pid."""
    if event.get("crash"):
        os._exit(1)
    return {"pid": os.getpid(), "event": event}


def echo_bytes(event, context):
    """``size`` pseudo-random bytes (every byte value), posted raw as application/unknown."""
    seed, size, out = event["seed"].encode(), event["size"], bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def region_rss_kb(event, context):
    """How much of this worker's region is resident (it is touched only by payloads that crossed it)."""
    lines = open("/proc/self/smaps").read().splitlines()
    for index, line in enumerate(lines):
        if line.endswith(REGION) or line.endswith(REGION + " (deleted)"):
            for detail in lines[index + 1:]:
                if detail.startswith("Rss:"):
                    return {"rss_kb": int(detail.split()[1]), "pid": os.getpid()}
    return {"rss_kb": None, "pid": os.getpid()}


def _reply_fd():
    """The write end of the worker's reply pipe, as a hostile handler finds it."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd > 2 and stat.S_ISFIFO(os.fstat(fd).st_mode):
                with open(f"/proc/self/fdinfo/{fd}") as info:
                    flags = int(info.read().split("flags:")[1].split()[0], 8)
                if flags & os.O_ACCMODE == os.O_WRONLY:
                    return fd
        except OSError:
            continue
    raise RuntimeError("no reply pipe found")


def _region_fd():
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith(REGION):
                return int(name)
        except OSError:
            continue
    raise RuntimeError("no region descriptor found")


def _send(header, payload=b""):
    raw = json.dumps(header).encode()
    os.write(_reply_fd(), struct.pack(">4sII", b"LSF1", len(raw), len(payload)) + raw + payload)


def lie(event, context):
    """A result frame whose ``region_bytes`` is ``event["region_bytes"]`` (and ``payload`` in the frame too)."""
    _send({"type": "result", "request_id": context.aws_request_id, "region_bytes": event["region_bytes"]},
          event.get("payload", "").encode())
    time.sleep(3600)  # the frame above is this request's reply


def shrink_then_reply(event, context):
    """Put a result in the region, announce it, then try to shrink the region under the supervisor's read, and
    to grow it. Returns nothing itself: the frame above is the reply."""
    fd = _region_fd()
    size = event["size"]
    os.pwrite(fd, b"y" * size, 0)
    errors = []
    for attempt in (lambda: os.ftruncate(fd, 0), lambda: os.ftruncate(fd, 1 << 40)):
        try:
            attempt()
            errors.append(None)
        except OSError as error:
            errors.append(error.errno)
    with open(event["report"], "w") as report:
        json.dump(errors, report)
    _send({"type": "result", "request_id": context.aws_request_id, "region_bytes": size})
    time.sleep(3600)
