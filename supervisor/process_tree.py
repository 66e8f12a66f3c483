"""Killing a worker together with everything it started, and leaving neither orphans nor zombies behind.

Who owns which process is kept by the kernel: every worker makes itself a *child subreaper* before it runs user
code, so an orphan anywhere in its tree (a daemon that double-forked or called ``setsid``) is re-parented to that
worker, and a worker's descendants are exactly the processes it is answerable for. The supervisor is a subreaper
too: only when a worker dies do its leftovers reach the supervisor. So every child of the supervisor is either a
worker it tracks (the active one, a standby, the fork template) or the leftover of a dead worker, to be killed.
"""

from __future__ import annotations

import _signal as signal  # not signal.py: its enums cost every start (shared/signal_names.py)
import contextlib
import functools
import os
import select
from _thread import RLock  # not threading: its import costs every start, for a lock

from lambda_supervisor.shared.prctl import set_child_subreaper

from .logs import log

#: Rounds of killing leftovers before giving up on a tree that keeps forking (each round kills all it found).
MAX_ORPHAN_ROUNDS = 1000

#: A worker recycles (between requests) once it holds this many zombies. As a subreaper it adopts the orphans of its
#: tree but never reaps them: it cannot tell them from the user's own children, whose exit status belongs to the
#: code waiting for them (subprocess.Popen). They count against RLIMIT_NPROC, which Lambda sets to 1024.
MAX_WORKER_ZOMBIES = 64


class Children:
    """This process's children as the supervisor keeps track of them: the workers it started and has not reaped
    (every other child is what a dead worker left behind, re-parented to us as its nearest subreaper), and the
    SIGCHLDs seen so far. One object, owned by the supervisor and handed to every worker handle.

    The SIGCHLD handler only calls :meth:`count_signal`: it bumps the count and writes a byte to the wake-up pipe
    (read by whoever waits for exits with :meth:`wait_for_signal`)."""

    def __init__(self) -> None:
        self.workers: set[int] = set()
        #: Held while a worker is being made (from its fork until it is tracked) and while orphans are hunted, so
        #: that with several slots no hunt takes another slot's newborn worker for a leftover.
        self.lock = RLock()
        #: SIGCHLDs seen so far, once they are counted (None until then). A child that was alive when the count
        #: was N is still alive while it is N, so "has it exited?" can be answered without a system call.
        self.signal_count: int | None = None
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_poller = select.poll()
        self._wake_poller.register(self._wake_read, select.POLLIN)

    def start_counting_signals(self) -> None:
        """Promise that every SIGCHLD from now on is counted (the caller installs a handler that calls
        :meth:`count_signal`)."""
        if self.signal_count is None:
            self.signal_count = 0

    def count_signal(self) -> None:
        """The SIGCHLD handler's one job: some child exited (or stopped) since the last count."""
        self.signal_count = (self.signal_count or 0) + 1
        with contextlib.suppress(BlockingIOError):  # full: a byte is there already
            os.write(self._wake_write, b"c")

    def wake(self) -> None:
        """End a :meth:`wait_for_signal` without a signal (to stop its thread)."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"w")

    def wait_for_signal(self) -> None:
        """Block until a SIGCHLD has been counted (or :meth:`wake` called) since the last return; drains the pipe."""
        self._wake_poller.poll()
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_read, 4096):
                pass

    def close(self) -> None:
        os.close(self._wake_read)
        os.close(self._wake_write)

    def track(self, pid: int, *, alive: bool) -> None:
        (self.workers.add if alive else self.workers.discard)(pid)

    @staticmethod
    def become_subreaper() -> bool:
        """Adopt orphaned descendants (Linux only); returns whether it worked."""
        return set_child_subreaper(True)

    def kill_orphans(self) -> list[int]:
        """Kill and reap every child of this process that is not a worker, with all its descendants, round after
        round until none is left: whatever a leftover forked meanwhile is re-parented to us once it dies, for the
        next round. Logs and returns their pids."""
        with self.lock:
            return self._kill_orphans()

    def _kill_orphans(self) -> list[int]:
        pids: list[int] = []
        me = os.getpid()
        for _ in range(MAX_ORPHAN_ROUNDS):
            children = children_by_parent()
            strays = [pid for pid in children.get(me, []) if pid not in self.workers]
            if not strays:
                break
            for pid in with_descendants(strays, children):  # reusing a scanned pid takes a pid-space wrap
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            for pid in strays:  # our children: their pids cannot be reused before we reap them
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            pids += strays
        if pids:
            log_killed_orphans(pids)
        return pids

    def reap_exited_orphans(self, keep: set[int]) -> None:
        """Reap adopted orphans that have exited on their own, without touching (or reaping) the workers in
        ``keep``. One ``waitid`` call when there is nothing to do: cheap enough to run after every invocation."""
        with self.lock:
            self._reap_exited_orphans(keep)

    @staticmethod
    def _reap_exited_orphans(keep: set[int]) -> None:
        while True:
            try:
                status = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if status is None or status.si_pid in keep:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(status.si_pid, 0)


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (as psutil's ``children(recursive=True)`` finds them)."""
    return with_descendants([pid], children_by_parent())


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def kill_tree(pid: int) -> None:
    """SIGKILL a worker (the leader of its own process group) and all its descendants, wherever they moved; and the
    worker itself, in case it is not (yet) a group leader: a worker forked from the template and killed before
    its setsid."""
    tree = process_tree(pid)
    signal_group(pid, signal.SIGKILL)
    for descendant in tree:  # reusing a scanned pid takes a pid-space wrap
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(descendant, signal.SIGKILL)


def _stat_after_name(pid: int | str) -> list[bytes]:
    """The fields of a process's /proc stat after its name (state, ppid, ...); empty once it is gone. The name is
    cut off at its last ")": it may hold spaces and parentheses."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return []


def parent_pid(pid: int | str) -> int | None:
    """A process's parent, from its /proc stat (None if it is gone)."""
    fields = _stat_after_name(pid)
    return int(fields[1]) if len(fields) > 1 else None


def cpu_ticks(pid: int | str) -> int | None:
    """The CPU time a process has used, all its threads (utime + stime, in clock ticks), from its /proc stat (None
    if it is gone)."""
    fields = _stat_after_name(pid)
    return int(fields[11]) + int(fields[12]) if len(fields) > 12 else None


class ChildLists:
    """Each process's children, read from the kernel's own lists (``/proc/PID/task/TID/children``, one per thread)
    when first asked for: finding a tree reads only that tree, where a scan of /proc reads every process on the
    machine (~1 ms per hundred, on the way to the first response and after every crash)."""

    def get(self, pid: int, default: list[int]) -> list[int]:
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:  # gone
            return default
        found: list[int] = []
        for thread in threads:
            try:
                with open(f"/proc/{pid}/task/{thread}/children", "rb") as children:
                    listed = children.read()
            except OSError:  # the thread is gone
                continue
            found += [int(child) for child in listed.split()]
        return found or default


@functools.cache
def _kernel_lists_children() -> bool:
    """Whether this kernel keeps children lists (CONFIG_PROC_CHILDREN, which checkpoint/restore selects)."""
    return os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def children_by_parent() -> ChildLists | dict[int, list[int]]:
    """Every process's children: the kernel's lists, or where it keeps none, one scan of /proc (psutil scans it once
    per ``children()`` call)."""
    return ChildLists() if _kernel_lists_children() else scan_children()


def scan_children() -> dict[int, list[int]]:
    """Every process's children, from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (parent := parent_pid(name)) is not None:  # else gone meanwhile
            children.setdefault(parent, []).append(int(name))
    return children


def with_descendants(roots: list[int], children: ChildLists | dict[int, list[int]]) -> list[int]:
    found, pending = [], list(roots)
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def log_killed_orphans(pids: list[int]) -> None:
    log("INFO", f"killed orphaned worker descendants: pids={pids}")


def count_zombies(pids: list[int]) -> int:
    """How many of these processes have exited and wait to be reaped."""
    return sum(_stat_after_name(pid)[:1] == [b"Z"] for pid in pids)
