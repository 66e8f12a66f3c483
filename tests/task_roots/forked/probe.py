"""What user code can observe of its worker process, for comparing a first worker forked from the bootstrap's
interpreter with an exec'd one (tests/process/test_forked_worker.py). ``needles_hex``: values to
count in this process's memory (given as hex so that the event itself does not hold them)."""

import ctypes
import gc
import multiprocessing
import os
import signal
import stat
import sys

def _parent_environ():
    """Whether this worker can read its supervisor's environment (what it holds: the Runtime API address)."""
    try:
        with open(f"/proc/{os.getppid()}/environ", "rb") as file:
            file.read(1)
        return "read"
    except OSError as error:
        return type(error).__name__


#: Tried as the user's init runs: the supervisor became non-dumpable after forking its first worker, before it
#: released it to import this.
def _collector():
    """The garbage collector as user code finds it: on, default thresholds, nothing frozen (as under awslambdaric)."""
    return [gc.isenabled(), list(gc.get_threshold()), gc.get_freeze_count()]


AT_INIT = {"parent_environ": _parent_environ(), "uid": os.getuid(), "collector": _collector()}
WITHHELD = ("AWS_LAMBDA_RUNTIME_API", "_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET")
PR_GET_DUMPABLE = 3


def _spawned_main(queue):
    main = sys.modules["__main__"]
    queue.put([getattr(main.__spec__, "name", None), sorted(name for name in sys.modules
                                                           if name.startswith("lambda_supervisor.supervisor"))])


def _spawn_report():
    """A process started with multiprocessing's spawn method: what its __main__ was, what of ours it imported."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_spawned_main, args=(queue,))
    process.start()
    result = queue.get(timeout=60)
    process.join(60)
    return [*result, process.exitcode]


def _count_in_memory(needles):
    """How often each needle lies in this process's readable memory, not counting the needle objects themselves."""
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    buffer_start = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    own = {id(needle) + bytes.__basicsize__ - 1 for needle in needles}
    counts = [0] * len(needles)
    with open("/proc/self/maps") as maps:
        regions = [line.split() for line in maps]
    mem = os.open("/proc/self/mem", os.O_RDONLY)
    try:
        for fields in regions:
            start, end = (int(part, 16) for part in fields[0].split("-"))
            if "r" not in fields[1] or fields[-1] in ("[vvar]", "[vsyscall]") or start <= buffer_start < end:
                continue
            _scan_region(mem, start, end, view, buffer, needles, own, counts)
    finally:
        os.close(mem)
    return counts


def _scan_region(mem, start, end, view, buffer, needles, own, counts):
    overlap = max(len(needle) for needle in needles)
    address = start
    while address < end:
        size = min(len(buffer), end - address)
        try:
            got = os.preadv(mem, [view[:size]], address)
        except OSError:
            return
        for index, needle in enumerate(needles):
            found = buffer.find(needle, 0, got)
            while found != -1:
                if address + found not in own:
                    counts[index] += 1
                found = buffer.find(needle, found + 1, got)
        if got < size or address + size >= end:
            return
        address += size - overlap


def _signals():
    dispositions = {}
    for number in range(1, signal.NSIG):
        try:
            handler = signal.getsignal(number)
        except ValueError:
            continue
        dispositions[number] = handler if isinstance(handler, int) else getattr(handler, "__name__", repr(handler))
    return {"dispositions": dispositions, "blocked": sorted(signal.pthread_sigmask(signal.SIG_BLOCK, []))}


def _fds():
    kinds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            mode = os.fstat(int(name)).st_mode
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # listdir's own descriptor, closed by now
            continue
        kinds[int(name)] = ("fifo" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode)
                            else "region" if target.startswith("/memfd:lambda-supervisor-payload") else target)
    return sorted(kinds.items())


def report(event, context):
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p
    with open("/proc/self/environ", "rb") as file:
        proc_environ = [entry for entry in file.read().split(b"\0") if entry]
    with open("/proc/self/cmdline", "rb") as file:
        cmdline = file.read().split(b"\0")
    needles = [bytes.fromhex(needle) for needle in event["needles_hex"]]
    main = sys.modules["__main__"]
    return {
        "pid": os.getpid(),
        "at_init": AT_INIT,
        "cmdline": [part.decode() for part in cmdline],
        "os_environ": sorted(name for name in WITHHELD if name in os.environ),
        "posix_environ": sorted(name for name in WITHHELD if name.encode() in os.environb),
        "getenv": [name for name in WITHHELD if libc.getenv(name.encode()) is not None],
        "proc_environ": [entry.decode(errors="replace") for entry in proc_environ
                         if entry.split(b"=", 1)[0].decode(errors="replace") in WITHHELD],
        "proc_environ_names": sorted({entry.split(b"=", 1)[0].decode(errors="replace") for entry in proc_environ}),
        "environ": sorted(os.environ),
        "memory": _count_in_memory(needles),
        "sys_path": sys.path,
        "argv": [sys.argv[0]] + [part for part in sys.argv[1:] if part.startswith("--")],
        "orig_argv": [part for part in sys.orig_argv if not part.isdigit() and ":" not in part],
        "flags": list(sys.flags),
        "main": [getattr(main.__spec__, "name", None), getattr(main, "__file__", None),
                 sorted(name for name in vars(main) if name.startswith("__"))],
        "modules": sorted(sys.modules),
        "supervisor_modules": sorted(name for name in sys.modules if name.startswith("lambda_supervisor.supervisor")),
        "spawn": _spawn_report(),
        "signals": _signals(),
        "cwd": os.getcwd(),
        "session_leader": os.getsid(0) == os.getpid(),
        "group_leader": os.getpgrp() == os.getpid(),
        "dumpable": ctypes.CDLL(None).prctl(PR_GET_DUMPABLE, 0, 0, 0, 0),
        "threads": len(os.listdir("/proc/self/task")),
        "collector": _collector(),
        "fds": _fds(),
        "stdio": [type(stream).__name__ for stream in (sys.__stdin__, sys.__stdout__, sys.__stderr__)]
                 + [type(stream.buffer).__name__ for stream in (sys.__stdout__, sys.__stderr__)],
    }


def handler(event, context):
    if event.get("action") == "crash":
        os._exit(1)
    return report(event, context)
