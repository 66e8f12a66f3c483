"""One handler for the soak, isolation and fuzz tests: it does what event["action"] says, good or hostile.

Only the worker imports this file. Processes it starts carry SOAK_MARKER in their environment (inherited from the
worker's) and SOAK_WORKER, the pid of the worker that started them, so a test can find every one of them and tell
whose it is, wherever it was re-parented to.
"""

import base64
import ctypes
import os
import stat
import pickle
import resource
import signal
import struct
import subprocess
import sys
import threading
import time

SLEEPER = ["sleep", "300"]


def _pipe_fd(access_mode):
    """A pipe end of this worker's, found as a hostile handler would: the FIFO beyond stdio with that access
    mode (the command line would not do: a worker forked from the template carries the template's)."""
    for name in sorted(os.listdir("/proc/self/fd"), key=int):
        fd = int(name)
        try:
            if fd > 2 and stat.S_ISFIFO(os.fstat(fd).st_mode):
                with open(f"/proc/self/fdinfo/{fd}") as info:
                    flags = int(info.read().split("flags:")[1].split()[0], 8)
                if flags & os.O_ACCMODE == access_mode:
                    return fd
        except OSError:
            continue
    raise RuntimeError("no such pipe")


def _out_fd():
    """The write end of the worker's reply pipe."""
    return _pipe_fd(os.O_WRONLY)


def _in_fd():
    """The read end of the worker's event pipe."""
    return _pipe_fd(os.O_RDONLY)


if os.environ.get("SOAK_BREAK_AT_IMPORT") == "1":  # every worker is born unable to receive an event
    os.close(_in_fd())


def _frame(header_bytes, payload=b""):
    return struct.pack(">4sII", b"LSF1", len(header_bytes), len(payload)) + header_bytes + payload


def _owned_environment():
    """Our environment plus SOAK_WORKER=<this worker's pid>: whose child a process is, even once re-parented."""
    return {**os.environ, "SOAK_WORKER": str(os.getpid())}


def _daemon(command=SLEEPER):
    """Double fork: a grandchild whose parent exits at once, so it is re-parented (to the worker, a subreaper)."""
    environment = _owned_environment()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvpe(command[0], command, environment)
        os._exit(0)
    os.waitpid(pid, 0)


def _spawn_family():
    environment = _owned_environment()
    children = [subprocess.Popen(SLEEPER, env=environment),
                subprocess.Popen(SLEEPER, env=environment, start_new_session=True)]
    _daemon()
    return [child.pid for child in children]


class _Exploit:
    """Unpickling this would create ``path``: proof that someone unpickled it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def echo(event, context):
    return event


def handler(event, context):
    action = event.get("action", "ok") if isinstance(event, dict) else "echo"
    if action == "ok":
        return {"pid": os.getpid(), "n": event.get("n")}
    if action == "echo":
        return event
    if action == "raise":
        raise ValueError(f"soak error {event.get('n')}")
    if action == "segfault":
        ctypes.string_at(0)
    if action == "os_exit":
        os._exit(3)
    if action == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "hang":
        time.sleep(3600)
    if action == "blow_memory":
        hoard = []
        for _ in range(256):  # bounded: 4 GB at most, should the supervisor ever miss the RSS limit
            hoard.append(bytearray(16 * 1024 * 1024))
        return "the memory limit was not enforced"
    if action == "spawn_and_return":
        return {"pid": os.getpid(), "children": _spawn_family()}
    if action == "spawn_and_crash":
        _spawn_family()
        os._exit(5)
    if action == "spawn_and_hang":
        _spawn_family()
        time.sleep(3600)
    if action == "daemon_hog":  # a daemon that holds memory, out of the worker's process group and session
        _daemon([sys.executable, "-c", f"x = bytearray({event['mb']} * 2**20); import time; time.sleep(300)"])
        time.sleep(3600)
    if action == "write_garbage":
        os.write(_out_fd(), b"not a frame, just noise\n" * 8)
        time.sleep(3600)
    if action == "write_huge_frame":
        os.write(_out_fd(), struct.pack(">4sII", b"LSF1", 20, 2**31))
        time.sleep(3600)
    if action == "write_bytes":  # fuzzing: these bytes, then the pipe closes
        os.write(_out_fd(), base64.b64decode(event["data"]))
        os.close(_out_fd())
        time.sleep(3600)
    if action == "close_out_pipe":
        os.close(_out_fd())
        time.sleep(3600)
    if action == "close_in_pipe_and_linger":  # answer, but leave a worker that cannot take another event
        os.close(_in_fd())
        threading.Thread(target=time.sleep, args=(event.get("linger", 3),)).start()  # delays the worker's exit
        return {"pid": os.getpid()}
    if action == "close_stdio":  # the worker's own stdin and stdout (the log): nothing the supervisor relies on
        for fd in (0, 1):
            try:
                os.close(fd)
            except OSError:  # closed by an earlier invocation on this worker
                pass
        return {"pid": os.getpid(), "closed": [0, 1]}
    if action == "send_pickle_header":
        os.write(_out_fd(), _frame(pickle.dumps(_Exploit(event["marker"]))))
        time.sleep(3600)
    if action == "send_code_header":
        code = f"__import__('os').system('touch {event['marker']}')".encode()
        os.write(_out_fd(), _frame(code))
        time.sleep(3600)
    if action == "send_pickle_error":  # a well-formed error frame for this very request, with a pickled payload
        header = ('{"type":"error","request_id":"%s","fatal":false}' % context.aws_request_id).encode()
        os.write(_out_fd(), _frame(header, pickle.dumps(_Exploit(event["marker"]))))
        time.sleep(3600)
    if action == "send_code_type":
        code = f"__import__('os').system('touch {event['marker']}')"
        header = ('{"type":"%s","request_id":"%s"}' % (code.replace("'", "\\u0027"), context.aws_request_id))
        os.write(_out_fd(), _frame(header.encode()))
        time.sleep(3600)
    if action == "rlimits":
        names = ["AS", "CORE", "CPU", "DATA", "FSIZE", "MEMLOCK", "NOFILE", "NPROC", "STACK"]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "limits": {name: resource.getrlimit(getattr(resource, "RLIMIT_" + name)) for name in names},
            "cpu_used": usage.ru_utime + usage.ru_stime,
            "child_limits": subprocess.run(
                [sys.executable, "-c", "import resource; print(resource.getrlimit(resource.RLIMIT_NOFILE))"],
                capture_output=True, text=True, check=True).stdout.strip(),
        }
    if action == "burn_cpu":
        end = time.process_time() + event.get("seconds", 3600)
        while time.process_time() < end:
            pass
        return {"pid": os.getpid(), "burned": event.get("seconds")}
    if action == "open_files":
        opened = []
        try:
            for _ in range(event["count"]):
                opened.append(os.open("/dev/null", os.O_RDONLY))
        except OSError as error:
            return {"opened": len(opened), "error": error.strerror}
        finally:
            for fd in opened:
                os.close(fd)
        return {"opened": len(opened), "error": None}
    if action == "environ":
        return {"env": dict(os.environ), "cmdline": open("/proc/self/cmdline", "rb").read().decode(errors="replace"),
                "parent_environ": _parent_environ()}
    if action == "fds":
        return {"own": _fd_targets("self"), "child": _child_fd_targets(), "cwd": os.getcwd()}
    raise RuntimeError(f"unknown action {action!r}")


def _parent_environ():
    """What the threat model admits: the supervisor's environment, through /proc, as the same user."""
    try:
        with open(f"/proc/{os.getppid()}/environ", "rb") as file:
            return file.read().decode(errors="replace")
    except OSError as error:
        return f"unreadable: {error}"


def _fd_targets(pid):
    targets = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets[name] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:  # the directory handle listdir used, already closed
            pass
    return targets


def _child_fd_targets():
    child = subprocess.Popen(SLEEPER, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return _fd_targets(child.pid)
    finally:
        child.kill()
        child.wait()
