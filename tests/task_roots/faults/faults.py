"""Handlers that misbehave on purpose, for the integration tests. Only the worker imports this file."""

import contextlib
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
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:lambda-supervisor-payload"):
                fds[fd] = "region"
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


def _reply_frame(request_id, payload=b'"forged"'):
    header = ('{"type":"result","request_id":"%s"}' % request_id).encode()
    return struct.pack(">4sII", b"LSF1", len(header), len(payload)) + header + payload


def _wait_for_file(path, timeout_s=60.0):
    end = time.monotonic() + timeout_s
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise TimeoutError(path)
        time.sleep(0.005)


def act(event, context):
    """One function, several misbehaviours, chosen by event["action"] (so a test can mix them on one worker)."""
    action = event.get("action", "ok")
    if action == "fork_and_return":  # the child forgets os._exit and returns into the worker's loop
        os.fork()
    elif action == "double_reply":  # a reply frame of our own, then the runtime's
        os.write(_worker_out_fd(), _reply_frame(context.aws_request_id))
    elif action == "stray_later":  # a child writes a reply for this request once the next one is running
        if os.fork() == 0:
            try:
                _wait_for_file(event["dir"] + "/go")
                os.write(_worker_out_fd(), _reply_frame(context.aws_request_id))
            finally:
                os._exit(0)
    elif action == "let_stray_in":  # the innocent request: the stray frame arrives while it runs
        try:
            os.close(os.open(event["dir"] + "/go", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:  # served again, on a fresh worker: nothing more to wait for
            return {"pid": os.getpid(), "action": action}
        time.sleep(3600)  # the supervisor ends this worker when the stray frame arrives
    return {"pid": os.getpid(), "action": action}
