"""Handlers for the process-tree tests: daemons with children of their own, daemons started at init, memory shared
with forked children, and what the worker can reach of the supervisor through /proc.

Imported only by the worker. Like soak.py's, every process started here carries SOAK_MARKER (inherited) and
SOAK_WORKER (the pid of the worker, or fork template, that started it).
"""

import ctypes
import os
import signal
import subprocess
import sys
import time

from soak import SLEEPER, _owned_environment

PTRACE_SEIZE = 0x4206


def _read_two_pids(read_fd):
    data = b""
    while len(data.split()) < 2:
        chunk = os.read(read_fd, 64)
        if not chunk:
            raise RuntimeError("the daemon died before it reported")
        data += chunk
    os.close(read_fd)
    first, second = data.split()[:2]
    return int(first), int(second)


def daemon_family(child_command=SLEEPER):
    """A daemon (double fork, setsid) that has a child of its own. Returns (daemon pid, its child's pid) once both
    exist: when the daemon dies, the child is orphaned a second time."""
    environment = _owned_environment()
    read_fd, write_fd = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:
        os.setsid()
        if os.fork() == 0:
            child = os.fork()
            if child == 0:
                os.execvpe(child_command[0], child_command, environment)
            os.write(write_fd, f"{os.getpid()} {child}\n".encode())
            os.execvpe(SLEEPER[0], SLEEPER, environment)
        os._exit(0)
    os.close(write_fd)
    os.waitpid(intermediate, 0)
    return _read_two_pids(read_fd)


def _rss_mb(pid):
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


def _wait_rss(pid, mb, timeout_s=30.0):
    end = time.monotonic() + timeout_s
    while _rss_mb(pid) < mb:
        if time.monotonic() > end:
            raise RuntimeError(f"process {pid} did not reach {mb} MB")
        time.sleep(0.01)


def _alive(pid):
    """Running (not a zombie, not gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _daemon_at_init():
    """A daemon started while the module is imported (a standby's or the fork template's init)."""
    environment = _owned_environment()
    read_fd, write_fd = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:
        os.setsid()
        daemon = os.fork()
        if daemon == 0:
            os.execvpe(SLEEPER[0], SLEEPER, environment)
        os.write(write_fd, f"{daemon} {os.getpid()}\n".encode())
        os._exit(0)
    os.close(write_fd)
    os.waitpid(intermediate, 0)
    return _read_two_pids(read_fd)[0]


INIT_DAEMON = _daemon_at_init() if os.environ.get("TREE_INIT_DAEMON") == "1" else None


def _hold_and_fork(mb, children, hold_s, dirty):
    """Hold ``mb`` MB, fork ``children`` children that keep it (shared, copy-on-write) or write all of it (their
    own copies), hold for ``hold_s``, then end the children."""
    hoard = bytearray(mb * 2**20)
    pids = []
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            if dirty:
                for offset in range(0, len(hoard), 4096):
                    hoard[offset] = 1
            time.sleep(hold_s + 60)
            os._exit(0)
        pids.append(pid)
    time.sleep(hold_s)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return {"pid": os.getpid(), "held_mb": mb, "children": len(pids)}


def _try_open(path, read=True):
    """"read" (or "opened", for a file like mem whose first page is no address), or the error's class name."""
    try:
        with open(path, "rb") as file:
            if read:
                file.read(1)
        return "read" if read else "opened"
    except OSError as error:
        return type(error).__name__


def _try_ptrace(pid):
    """PTRACE_SEIZE ``pid`` from a throw-away child (its exit detaches it, and the tracee is never stopped)."""
    child = os.fork()
    if child == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        result = libc.ptrace(PTRACE_SEIZE, pid, None, None)
        os._exit(0 if result == 0 else min(ctypes.get_errno(), 255) or 255)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    return "attached" if code == 0 else os.strerror(code)


def _child_pids():
    pids = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as children:
                pids += [int(pid) for pid in children.read().split()]
        except OSError:
            continue
    return pids


def _leave_zombies(count):
    """``count`` orphans that the worker adopts (it is a subreaper) and that then exit: zombies only the worker
    could reap. Returns once they are all its zombie children."""
    before = {pid for pid in _child_pids() if not _alive(pid)}
    for _ in range(count):
        intermediate = os.fork()
        if intermediate == 0:
            if os.fork() == 0:
                while os.getppid() != int(os.environ["TREE_WORKER_PID"]):
                    time.sleep(0.001)
                os._exit(0)
            os._exit(0)
        os.waitpid(intermediate, 0)
    end = time.monotonic() + 30
    while len({pid for pid in _child_pids() if not _alive(pid)} - before) < count:
        if time.monotonic() > end:
            raise RuntimeError("the orphans did not become the worker's zombies")
        time.sleep(0.005)
    return {"pid": os.getpid(), "zombies": len([pid for pid in _child_pids() if not _alive(pid)])}


#: A child started by one invocation and waited for by a later one.
_PENDING = []


def handler(event, context):
    action = event["action"]
    if action == "daemon_family_and_crash":
        mb = event.get("mb")
        command = [sys.executable, "-c", f"x = bytearray({mb} * 2**20); import time; time.sleep(300)"] if mb else SLEEPER
        _daemon, child = daemon_family(command)
        if mb:
            _wait_rss(child, mb)
        os._exit(5)
    if action == "daemon_family_and_return":
        daemon, child = daemon_family()
        return {"pid": os.getpid(), "daemon": daemon, "child": child}
    if action == "hold":
        hoard = bytearray(event["mb"] * 2**20)
        time.sleep(event.get("hold_s", 1.0))
        return {"pid": os.getpid(), "held_mb": len(hoard) // 2**20}
    if action == "hold_and_fork":
        return _hold_and_fork(event["mb"], event["children"], event.get("hold_s", 1.0), event.get("dirty", False))
    if action == "leave_zombies":
        os.environ["TREE_WORKER_PID"] = str(os.getpid())
        return _leave_zombies(event["count"])
    if action == "start_child":  # its status is collected by "wait_child", in a later invocation
        _PENDING.append(subprocess.Popen(["sh", "-c", f"exit {event['status']}"]))
        return {"pid": os.getpid(), "child": _PENDING[-1].pid}
    if action == "wait_child":
        child = _PENDING.pop()
        while _alive(child.pid):  # until it has exited: from then on, no one but us may reap it
            time.sleep(0.005)
        return {"pid": os.getpid(), "status": child.wait(), "run": subprocess.run(["sh", "-c", "exit 9"]).returncode}
    if action == "init_daemon":
        return {"pid": os.getpid(), "daemon": INIT_DAEMON, "alive": _alive(INIT_DAEMON)}
    if action == "proc_access":
        parent = os.getppid()
        libc = ctypes.CDLL(None, use_errno=True)
        return {"uid": os.getuid(), "supervisor": parent, "dumpable": libc.prctl(3, 0, 0, 0, 0),
                "environ": _try_open(f"/proc/{parent}/environ"), "mem": _try_open(f"/proc/{parent}/mem", read=False),
                "ptrace": _try_ptrace(parent)}
    raise RuntimeError(f"unknown action {action!r}")
