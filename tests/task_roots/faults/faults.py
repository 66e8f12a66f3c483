"""Handlers that misbehave on purpose, for the integration tests. Only the worker imports this file."""

import ctypes
import os
import signal
import stat
import struct
import subprocess
import sys
import time


def echo(event, context):
    return {
        "event": event,
        "pid": os.getpid(),
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "invoked_function_arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        "identity": context.identity and context.identity.cognito_identity_id,
        "client_custom": context.client_context and context.client_context.custom,
    }


def pid(event, context):
    return os.getpid()


def raise_error(event, context):
    raise ValueError("bad value: " + str(event.get("detail")))


def raise_memory_error(event, context):
    raise MemoryError("pretend the heap ran out")


def segfault(event, context):
    ctypes.string_at(0)


def os_exit(event, context):
    os._exit(3)


def sys_exit(event, context):
    sys.exit(4)


def _announce_pid(event):
    """Tell the test we are inside the handler, by writing our pid where the event says."""
    path = event["pid_file"]
    with open(path + ".tmp", "w") as file:
        file.write(str(os.getpid()))
    os.rename(path + ".tmp", path)


def block(event, context):
    _announce_pid(event)
    time.sleep(3600)


def hang(event, context):
    time.sleep(3600)


def blow_memory(event, context):
    hoard = []
    while True:
        hoard.append(bytearray(16 * 1024 * 1024))


def unserialisable(event, context):
    return {1, 2, 3}


def big_result(event, context):
    return "x" * (7 * 1024 * 1024)


def _worker_out_fd():
    """The write end of the worker's reply pipe, found as a hostile handler would: the one write-only FIFO
    besides stdout and stderr."""
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


def write_huge_frame(event, context):
    os.write(_worker_out_fd(), struct.pack(">4sII", b"LSF1", 20, 2**31))
    time.sleep(3600)


def write_garbage(event, context):
    os.write(_worker_out_fd(), b"this is not a frame at all, just noise from the handler\n" * 4)
    time.sleep(3600)


def close_pipe(event, context):
    os.close(_worker_out_fd())
    time.sleep(3600)


def spawn_children(event, context):
    """Start a child in our process group and one that escapes it with setsid; return their pids."""
    child = subprocess.Popen(["sleep", "300"])
    escaped = subprocess.Popen(["sleep", "301"], start_new_session=True)
    return {"worker": os.getpid(), "child": child.pid, "escaped": escaped.pid}


def inspect_isolation(event, context):
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            mode = os.fstat(fd).st_mode
        except OSError:  # the directory handle listdir used, already closed
            continue
        fds[fd] = "fifo" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "other"
    return {
        "runtime_api": os.environ.get("AWS_LAMBDA_RUNTIME_API"),
        "fds": fds,
        "pgid_is_pid": os.getpgid(0) == os.getpid(),
        "sid_is_pid": os.getsid(0) == os.getpid(),
    }


def ignore_sigterm_and_block(event, context):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _announce_pid(event)
    time.sleep(3600)


def raise_named(event, context):
    """Raise an exception whose class is named by the event: user code controls that name completely."""
    raise type(event["name"], (Exception,), {})(event.get("message", "named"))
