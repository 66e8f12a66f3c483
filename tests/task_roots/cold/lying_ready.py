"""A function whose init writes its own ready frame to the worker's reply pipe, claiming more open sockets than any
worker reports (a lying worker: the supervisor must refuse it, not render or act on the count)."""

import json
import os
import stat
import struct


def _worker_out_fd():
    """The write end of the worker's reply pipe: the one write-only FIFO besides stdout and stderr."""
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


_HEADER = json.dumps({"type": "ready", "pid": os.getpid(), "open_sockets": 10**30, "extra_threads": 0}).encode()
os.write(_worker_out_fd(), struct.pack(">4sII", b"LSF1", len(_HEADER), 0) + _HEADER)


def handler(event, context):
    return {"pid": os.getpid()}
