"""One worker process as the supervisor sees it: start it, wait for it, hand it an event, judge what comes back.

Every wait is one epoll loop over three things: the pipe from the worker (frames), the pipe to the worker
(an event still being written, so a worker that stops reading cannot block us), and a pidfd that becomes readable
the moment the worker exits. Deadlines, the memory limit and shutdown requests are checked on a short tick. So a
crash is seen when it happens, a hang is killed at its deadline, and whatever the worker writes is decoded by a
bounded frame decoder and never trusted further than that.
"""

from __future__ import annotations

import _signal as signal  # not signal.py: its enums cost every start (shared/signal_names.py)
import contextlib
import os
import select
import time
from _thread import allocate_lock  # not threading: its import costs every start, for a lock
from collections import deque
from collections.abc import Callable, Mapping

from lambda_supervisor.shared.cpu_handoff import CpuHandoff
from lambda_supervisor.shared.errors import ErrorType, error_object, response_size_message
from lambda_supervisor.shared.payload_region import PayloadRegion
from lambda_supervisor.shared.protocol import (
    STACK_DUMP_SIGNAL,
    ErrorMessage,
    Frame,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    InitErrorMessage,
    InitLeftovers,
    InvalidMessage,
    MessageType,
    ReadyMessage,
    ResultMessage,
    parse_error,
    parse_reply,
    parse_startup,
)
from lambda_supervisor.shared.signal_names import signal_name

from .config import Config
from .early_worker import make_pipes
from .events import emit
from .memory import TreeMemoryGauge
from .outcome import Failure, Outcome, Response, failure
from .outcome import ReplacementReason as Reason
from .process_tree import Children, count_zombies, kill_tree, parent_pid, process_tree, signal_group
from .runtime_api import Invocation
from .worker_launch import Launched, launch
from .worker_launch import worker_environment as worker_environment  # where tests and callers know it
from .worker_limits import WorkerLimits

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's

if TYPE_CHECKING:
    from typing import Any

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
#: At the timeout, how long a hung worker gets to take the stack dump signal before the post goes out.
STACK_DUMP_WAIT_S = 0.005
#: How long a worker that had not taken it by then may still take (a CPU-starved worker waits for the CPU) before
#: SIGKILL. The error has been posted by then, so this delays only the replacement.
STACK_DUMP_START_WAIT_S = 0.2
#: Once it has taken the signal, how long it gets to finish writing the dump.
STACK_DUMP_WRITE_WAIT_S = 0.003
#: After the worker's pipe hits EOF, how long to wait for its exit to show before calling it a closed pipe.
EXIT_AFTER_EOF_S = 0.5
#: At most this many reads (of up to 1 MiB each) of what a dead worker left in its pipe.
LAST_WORDS_READS = 4
#: How many of a worker's past request ids are remembered, to tell a late stray reply from garbage.
REMEMBERED_REQUEST_IDS = 64
#: How long a reap waits for a forked worker, killed before the template's intermediate process exited, to be
#: re-parented to the supervisor: only its parent can reap it, and the intermediate exits right after the fork.
ADOPTION_WAIT_S = 5.0


class WorkerInitFailed(Exception):
    """The worker could not become ready; ``error`` is the object for ``/runtime/init/error``."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error['errorType']}: {error['errorMessage']}")
        self.error = error


class WorkerWaitInterrupted(Exception):
    """A wait for a starting worker was cut short by a shutdown request; the worker has been killed."""


class _Interrupted(Exception):
    """The interrupt descriptor became readable."""


class _WorkerGone(Exception):
    """The worker's pipe closed or the worker exited."""


class _DeadlineReached(Exception):
    pass


class _Abort(Exception):
    """A tick decided to end the wait (memory limit, shutdown); carries the outcome to report."""

    def __init__(self, outcome: Failure) -> None:
        super().__init__(outcome.fault)
        self.outcome = outcome


def describe_wait_status(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"signal {signal_name(-code) or -code}"
    return f"exit status {code}"


def signal_pending(pid: int, signum: int) -> bool:
    """Whether a signal sent to the process ``pid`` is still waiting to be taken by one of its threads."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"ShdPnd:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def _event_frame(invocation: Invocation, soft_timeout_ms: int, region: PayloadRegion | None,
                 home_cpu: int | None = None) -> bytes | Failure:
    """The invoke frame for an event, or the error to post when it cannot be framed (metadata over the frame
    header's bound, as a huge client context makes it): the event never reaches the worker, which stays warm.
    A large body goes through the worker's region, the frame only saying how large it is."""
    message, body = invocation.worker_message(soft_timeout_ms), invocation.body
    if home_cpu is not None:
        message = message._replace(home_cpu=home_cpu)
    try:
        if region is not None and region.fits(len(body)):
            return message._replace(region_bytes=region.put(body)).encode(b"")
        return message.encode(body)
    except ValueError as error:
        return failure(ErrorType.EVENT_METADATA_TOO_LARGE, invocation.request_id,
                       f"the invocation's metadata (client context, identity, ids) cannot be passed to the function: "
                       f"{error}")


class WorkerProcess:
    """A started worker. Not thread-safe: one thread at a time uses it (the main loop, or the idle reaper while the
    loop waits for an event; see idle_reaper.py)."""

    def __init__(self, pid: int, to_worker: int, from_worker: int, limits: WorkerLimits, children: Children,
                 region: PayloadRegion | None = None) -> None:
        """Take charge of a started worker: ``pid`` must be (or be about to become) a child of this process, and
        the two descriptors are the supervisor's ends of its pipes. ``region``: the worker's shared-memory region."""
        self.limits = limits
        self._registry = children
        self._region = region
        self.pid = pid
        self.started_monotonic = time.monotonic()
        self.ready_seconds: float | None = None
        self.init_leftovers = InitLeftovers()  # as its ready frame reported them
        self.invocations = 0
        self.peak_rss_bytes = 0
        self.last_rss_bytes = 0
        self.exit_description: str | None = None
        self._to_worker = to_worker
        self._from_worker = from_worker
        self._decoder = FrameDecoder(max_payload_bytes=limits.max_frame_payload_bytes)
        self._frames: deque[Frame] = deque()
        self._pidfd = os.pidfd_open(self.pid)
        self._poller = select.epoll()  # not selectors: its import (with math) costs every cold start
        self._poller.register(from_worker, select.EPOLLIN)
        self._poller.register(self._pidfd, select.EPOLLIN)
        self._exited = False
        self._reap_lock = allocate_lock()  # one reap, whichever thread (a slot's, the idle sweep's) kills first
        self._input_eof = False
        self._sent = 0  # bytes of the current event written to the worker
        self._served: deque[str] = deque(maxlen=REMEMBERED_REQUEST_IDS)  # request ids this worker has answered
        self._statm = os.open(f"/proc/{pid}/statm", os.O_RDONLY | os.O_CLOEXEC)
        self._children = self._open_children_list(pid)
        self.zombie_children = 0
        self._memory = TreeMemoryGauge()
        self._exit_poller = select.poll()  # one poll on the pidfd, asked twice per invocation: made once
        self._exit_poller.register(self._pidfd, select.POLLIN)
        self._alive_at_signal_count: int | None = None  # the SIGCHLD count when it was last seen alive
        self._stack_dump_requested_at: float | None = None  # kill() waits for that dump first
        children.track(self.pid, alive=True)

    # -- starting -----------------------------------------------------------------------------------------------

    @classmethod
    def spawn(cls, config: Config, environ: Mapping[str, str], limits: WorkerLimits, children: Children,
              template_control_fd: int | None = None, cpu_handoff: CpuHandoff | None = None) -> WorkerProcess:
        """Start a worker (see worker_launch.py) and take charge of it."""
        return cls.take_over(launch(config, environ, template_control_fd, cpu_handoff), limits, children)

    @classmethod
    def take_over(cls, launched: Launched, limits: WorkerLimits, children: Children) -> WorkerProcess:
        """Take charge of a worker started by :func:`.worker_launch.launch` (maybe before the supervisor was
        fully imported); its init time counts from its start."""
        worker = cls.adopt(launched.pid, launched.to_write, launched.from_read, limits, children, launched.region)
        worker.started_monotonic = launched.started_monotonic
        return worker

    @classmethod
    def adopt(cls, pid: int, to_write: int, from_read: int, limits: WorkerLimits, children: Children,
              region: PayloadRegion | None = None) -> WorkerProcess:
        os.set_blocking(to_write, False)
        os.set_blocking(from_read, False)
        return cls(pid, to_write, from_read, limits, children, region)

    make_pipes = staticmethod(make_pipes)

    def wait_ready(self, timeout_s: float, interrupt_fd: int | None = None) -> float:
        """Block until the worker has imported the handler; returns the seconds it took.

        Raises WorkerInitFailed (after making sure the worker is gone) with the error object to report, or
        WorkerWaitInterrupted (after killing the worker) once ``interrupt_fd`` is readable: the supervisor's
        shutdown self-pipe, so that SIGTERM does not wait for a long init.
        """
        try:
            frame = self._await_frame(b"", time.monotonic() + timeout_s, interrupt_fd=interrupt_fd)
        except _Interrupted:
            self.kill()
            raise WorkerWaitInterrupted("shutdown requested while the worker was starting") from None
        except _WorkerGone:
            if not self._reap_after_gone():
                raise WorkerInitFailed(error_object(
                    ErrorType.INVALID_WORKER_MESSAGE, "Worker closed its pipe during init")) from None
            raise WorkerInitFailed(error_object(
                ErrorType.EXIT, f"Runtime exited with error: {self.exit_description} (during init)")) from None
        except _DeadlineReached:
            self.kill()
            raise WorkerInitFailed(error_object(
                ErrorType.INIT_TIMEOUT, f"Init did not finish within {timeout_s:.2f} seconds")) from None
        except FrameError as error:
            self.kill()
            raise WorkerInitFailed(error_object(
                ErrorType.INVALID_WORKER_MESSAGE, f"Worker sent an invalid message during init: {error}")) from None
        try:
            startup = parse_startup(frame)
            if isinstance(startup, ReadyMessage):
                self.init_leftovers = startup.leftovers
                self.ready_seconds = time.monotonic() - self.started_monotonic
                return self.ready_seconds
            init_error = parse_error(frame.payload)
        except InvalidMessage as problem:
            init_error = error_object(ErrorType.INVALID_WORKER_MESSAGE, str(problem))
        self.kill()
        raise WorkerInitFailed(init_error)

    # -- invoking -----------------------------------------------------------------------------------------------

    def invoke(self, invocation: Invocation, *, soft_timeout_ms: int = 0,
               shutdown_requested: Callable[[], bool] = lambda: False, home_cpu: int | None = None) -> Outcome:
        """Run one invocation to its single outcome, within the worker's :class:`WorkerLimits`. On any outcome with
        a ``fault`` the worker is dead, or, after a timeout, still dumping its stacks so that the error can be
        posted first: the caller kills it after the post.

        ``home_cpu``: where the worker is to wait afterwards, once the hand-off's home has moved (cpu_home.py).
        The timeout fires ``timeout_margin_s`` before Lambda's deadline, which resets the whole environment when it
        passes unanswered (the soft timeout counts back from there). An event with less time left than that is
        answered at once and never sent."""
        request_id = invocation.request_id
        margin_s = self.limits.timeout_margin_s
        now = time.monotonic()
        seconds_left = invocation.seconds_left()
        budget_s = max(seconds_left + now - invocation.received_monotonic, 0.0)  # from its arrival to the deadline
        deadline = now + seconds_left - margin_s
        if deadline <= now:
            return failure(ErrorType.TIMEOUT, request_id, f"Task timed out after {budget_s:.2f} seconds",
                           never_sent=True)
        soft_before_deadline_ms = soft_timeout_ms + round(margin_s * 1000) if soft_timeout_ms else 0
        frame_bytes = _event_frame(invocation, soft_before_deadline_ms, self._region, home_cpu)
        if isinstance(frame_bytes, Failure):
            return frame_bytes
        self.invocations += 1
        shutdown_started: list[float] = []
        tick = self._invocation_tick(request_id, deadline, shutdown_requested, shutdown_started)
        self._sent = 0
        if (stray := self._stray_between_invocations()) is not None:
            return self._blame_earlier(request_id, self._served[-1] if self._served else "", stray)
        try:
            frame = self._await_reply(frame_bytes, deadline, tick)
        except _Abort as abort:
            return abort.outcome
        except _DeadlineReached:
            return self._deadline_outcome(request_id, budget_s, shutting_down=bool(shutdown_started))
        except _WorkerGone:
            return self._gone(request_id)
        except FrameTooLarge as error:
            self.kill()
            message = response_size_message(error.size, error.limit)
            return failure(ErrorType.RESPONSE_SIZE_TOO_LARGE, request_id, message, Reason.OVERSIZE_FRAME)
        except FrameError as error:
            return self._protocol_violation(request_id, str(error))
        return self._after_reply(request_id, self._judge_reply(frame, request_id))

    def _await_reply(self, outgoing: bytes, deadline: float, tick: Callable[[], float | None]) -> Frame:
        """The wait for an invocation's reply; with several slots, the memory budget knows the worker is busy."""
        budget = self.limits.budget
        if budget is None:
            return self._await_frame(outgoing, deadline, tick=tick, tick_s=self.limits.poll_s)
        budget.serving(self.pid, True)
        try:
            return self._await_frame(outgoing, deadline, tick=tick, tick_s=self.limits.poll_s)
        finally:
            budget.serving(self.pid, False)

    def _invocation_tick(self, request_id: str, deadline: float, shutdown_requested: Callable[[], bool],
                         shutdown_started: list[float]) -> Callable[[], float | None]:
        """What to do between select calls during an invocation: enforce the memory limit, begin a requested
        shutdown (noting when in ``shutdown_started``). The tick returns a new end time for the wait, or None."""
        max_rss_bytes = self.limits.max_rss_bytes
        budget = self.limits.budget

        def tick() -> float | None:
            memory = self.memory_bytes(max_rss_bytes)
            if memory > max_rss_bytes:
                self.kill()
                detail = (f"worker exceeded the memory limit: PSS {memory / 2**20:.1f} MB > "
                          f"{max_rss_bytes / 2**20:.0f} MB")
                raise _Abort(failure(ErrorType.OUT_OF_MEMORY, request_id, f"{detail}; killed",
                                     Reason.OUT_OF_MEMORY))
            if budget is not None and (verdict := budget.check(self.pid)) is not None:  # the largest of all, over
                self.kill()
                raise _Abort(failure(ErrorType.OUT_OF_MEMORY, request_id, f"{verdict}; killed", Reason.OUT_OF_MEMORY))
            if not shutdown_started and shutdown_requested():
                shutdown_started.append(time.monotonic())
                if not self.limits.drain:
                    signal_group(self.pid, signal.SIGTERM)
                return min(deadline, time.monotonic() + self.limits.shutdown_grace_s)
            return None

        return tick

    def _gone(self, request_id: str) -> Failure:
        """The worker exited or closed its pipe during the invocation."""
        delivered = self._sent > 0  # False: the worker was gone before the event reached it
        if not self._reap_after_gone():
            return self._protocol_violation(request_id, "it closed its pipe").replace(delivered=delivered)
        return failure(ErrorType.EXIT, request_id, f"Runtime exited with error: {self.exit_description}",
                       Reason.CRASH, delivered=delivered)

    def _after_reply(self, request_id: str, outcome: Outcome) -> Outcome:
        """Remember the request as answered; a second frame that came with the reply is this invocation's fault
        (its own answer stands, the worker is replaced)."""
        if isinstance(outcome, Failure) and outcome.blame is not None:
            return outcome
        self._served.append(request_id)
        if outcome.fault is None and (self._frames or self._decoder.pending_bytes):
            self.kill()
            return outcome.replace(fault=Reason.STRAY_FRAME)
        return outcome

    def _deadline_outcome(self, request_id: str, budget_s: float, *, shutting_down: bool) -> Failure:
        if shutting_down:  # the shutdown grace is spent: no waiting for a starved worker's dump
            self._dump_stacks(STACK_DUMP_WAIT_S)
            self._stack_dump_requested_at = None
            self.kill()
            return failure(ErrorType.EXIT, request_id, "Runtime exited with error: worker terminated because "
                           "the runtime is shutting down", Reason.SHUTDOWN)
        self._dump_stacks_then_freeze()  # killed after the post, which must beat Lambda's deadline
        return failure(ErrorType.TIMEOUT, request_id, f"Task timed out after {budget_s:.2f} seconds",
                       Reason.TIMEOUT)

    def _judge_reply(self, frame: Frame, request_id: str) -> Outcome:
        max_response_bytes = self.limits.max_response_bytes
        reply: ResultMessage | ErrorMessage | None = None
        problem: InvalidMessage | None = None
        replied_to: str | None
        try:
            reply = parse_reply(frame, self._region.size if self._region is not None else 0)
            replied_to = reply.request_id
        except InvalidMessage as invalid:
            problem, replied_to = invalid, invalid.request_id
        if replied_to != request_id:
            return self._misaddressed(request_id, replied_to, problem)
        response = self._result_payload(frame, reply)
        if len(response) > max_response_bytes and frame.type == MessageType.RESULT:
            return failure(ErrorType.RESPONSE_SIZE_TOO_LARGE, request_id,
                           response_size_message(len(response), max_response_bytes))
        if reply is None:
            return self._protocol_violation(request_id, str(problem))
        if isinstance(reply, ResultMessage):
            return Response(response, reply.content_type)
        try:
            error = parse_error(frame.payload)
        except InvalidMessage as invalid:
            return self._protocol_violation(request_id, str(invalid))
        return Failure(error, Reason.MEMORY_ERROR if reply.fatal else None, reply.xray_cause)

    def _result_payload(self, frame: Frame, reply: ResultMessage | ErrorMessage | None) -> bytes | memoryview:
        """A result's bytes: the frame's payload, or a view of the worker's region (its length checked against the
        region's size when the reply was parsed). Only posted, never parsed: a worker that writes the region while
        it is posted garbles nothing but its own response."""
        if isinstance(reply, ResultMessage) and reply.region_bytes is not None and self._region is not None:
            return self._region.view(reply.region_bytes)
        return frame.payload

    def _misaddressed(self, request_id: str, replied_to: str | None, problem: InvalidMessage | None) -> Failure:
        """A reply that is not for ``request_id``: a late second reply to an earlier request is that request's
        fault; anything else is this one's."""
        if replied_to is None:
            return self._protocol_violation(request_id, str(problem))
        if replied_to in self._served:
            return self._blame_earlier(request_id, replied_to, "a second reply to it arrived during this one")
        return self._protocol_violation(request_id, f"reply for request {replied_to!r}")

    def _stray_between_invocations(self) -> str | None:
        """Whatever the worker wrote after its last reply and before this event (one epoll_wait, then a read if it is
        readable): the fault of the invocation before, or of the init. Returns what was found, or None if the pipe
        is quiet."""
        if self._frames or self._decoder.pending_bytes:
            return "a frame was left over after the last reply"
        if self._input_eof:
            return None
        ready = self._poller.poll(0)  # cheaper than a read that fails with EAGAIN (an exception) on a quiet pipe
        if not ready or all(fd != self._from_worker for fd, _ in ready):
            return None
        try:
            frames = self._decoder.read_from(self._from_worker)
        except BlockingIOError:
            return None
        except FrameError as error:
            return f"it wrote an invalid frame while idle ({error})"
        if frames is None:  # closed: the wait for the reply sees that, as it does for a worker that closes mid-event
            self._input_eof = True
            self._poller.unregister(self._from_worker)
            return None
        self._frames.extend(frames)
        return "it wrote a frame while idle"

    def _blame_earlier(self, request_id: str, guilty: str, detail: str) -> Failure:
        """The worker was broken by an earlier invocation (``guilty``; "" for its init), not by this one: replace
        it and serve this request again."""
        self.kill()
        return failure(ErrorType.INVALID_WORKER_MESSAGE, request_id,
                       f"worker sent an invalid message ({detail}); worker replaced", Reason.STRAY_FRAME,
                       delivered=False, blame=guilty)

    def _protocol_violation(self, request_id: str, detail: str) -> Failure:
        self.kill()
        return failure(ErrorType.INVALID_WORKER_MESSAGE, request_id,
                       f"worker sent an invalid message ({detail}); worker replaced", Reason.INVALID_MESSAGE)

    # -- the one wait loop --------------------------------------------------------------------------------------

    def _await_frame(
        self,
        outgoing: bytes,
        until: float,
        *,
        tick: Callable[[], float | None] | None = None,
        tick_s: float = 0.05,
        interrupt_fd: int | None = None,
    ) -> Frame:
        # The pipe holds 1 MiB: an event is almost always written at once, without a wait. Only what did
        # not fit is written as the worker drains the pipe.
        pending = self._write_some(memoryview(outgoing), registered=False) if outgoing else memoryview(b"")
        if pending:
            self._poller.register(self._to_worker, select.EPOLLOUT)
        if interrupt_fd is not None:
            self._poller.register(interrupt_fd, select.EPOLLIN)
        next_tick = time.monotonic() + tick_s
        try:
            while not self._frames:
                now = time.monotonic()
                if now >= until:
                    raise _DeadlineReached
                timeout = until - now if tick is None else min(until - now, max(next_tick - now, 0.0))
                for fd, _ in self._poller.poll(timeout):  # seconds, rounded up to whole milliseconds
                    if fd == interrupt_fd:
                        raise _Interrupted
                    if fd == self._to_worker:
                        pending = self._write_some(pending)
                    elif fd == self._from_worker:
                        self._read_available()
                    elif fd == self._pidfd:
                        self._read_available()
                        if not self._frames:
                            raise _WorkerGone
                if tick is not None and time.monotonic() >= next_tick:
                    until = tick() or until
                    next_tick = time.monotonic() + tick_s
            return self._frames.popleft()
        finally:
            if pending:
                self._poller.unregister(self._to_worker)
            if interrupt_fd is not None and not self._exited:  # a reaped worker's poller is closed
                self._poller.unregister(interrupt_fd)

    def _write_some(self, pending: memoryview, *, registered: bool = True) -> memoryview:
        try:
            written = os.write(self._to_worker, pending)
        except BlockingIOError:
            return pending
        except BrokenPipeError:
            raise _WorkerGone from None
        self._sent += written
        rest = pending[written:]
        if not rest and registered:
            self._poller.unregister(self._to_worker)
        return rest

    def _read_available(self) -> None:
        """Read until a whole frame is in or the pipe is empty for now; EOF means the worker closed it or exited."""
        while not self._input_eof and not self._frames:
            try:
                frames = self._decoder.read_from(self._from_worker)
            except BlockingIOError:
                return
            if frames is None:
                self._input_eof = True
                self._poller.unregister(self._from_worker)
                break
            self._frames.extend(frames)
        if not self._frames and self._input_eof:
            raise _WorkerGone

    # -- health -------------------------------------------------------------------------------------------------

    def memory_bytes(self, limit_bytes: int) -> int:
        """What the worker and all its descendants hold (a handler's children and daemons count against its limit):
        their PSS when their summed RSS is over ``limit_bytes``, else that RSS sum (see memory.py). Only the
        worker's own tree: what a dead worker left behind is not this one's."""
        if self._exited:
            return 0
        memory, rss = self._memory.measure(process_tree(self.pid), limit_bytes)
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        return memory

    def own_rss_bytes(self) -> int:
        """The worker's own RSS: one ``pread`` of its /proc statm, kept open, cheap enough for every invocation
        (a tenth of what psutil's memory_info costs). Kept as ``last_rss_bytes``; once the worker is reaped, the
        last value read."""
        if self._exited:  # its /proc file is closed, and the descriptor number may already be another file's
            return self.last_rss_bytes
        try:
            self.last_rss_bytes = int(os.pread(self._statm, 256, 0).split()[1]) * PAGE_SIZE
        except (OSError, IndexError, ValueError):
            return 0
        self.peak_rss_bytes = max(self.peak_rss_bytes, self.last_rss_bytes)
        return self.last_rss_bytes

    @staticmethod
    def _open_children_list(pid: int) -> int | None:
        """The worker's main thread's children (where the kernel puts the orphans it adopts), kept open."""
        try:
            return os.open(f"/proc/{pid}/task/{pid}/children", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # a kernel without CONFIG_PROC_CHILDREN
            return None

    def count_zombie_children(self, at_least: int) -> int:
        """How many exited children the worker holds unreaped, counted only when it has ``at_least`` children (one
        ``pread`` otherwise). Kept as ``zombie_children``."""
        if self._exited or self._children is None:
            return self.zombie_children
        try:
            children = [int(pid) for pid in os.pread(self._children, 16384, 0).split()]
        except (OSError, ValueError):
            return self.zombie_children
        self.zombie_children = count_zombies(children) if len(children) >= at_least else 0
        return self.zombie_children

    def has_exited(self) -> bool:
        """Whether the worker died on its own since we last looked (e.g. right after sending its reply).

        Asked several times per invocation; only the first question after a SIGCHLD costs a ``poll``."""
        if self._exited:
            return True
        count = self._registry.signal_count  # read before looking: an exit after the look changes it
        if count is not None and count == self._alive_at_signal_count:
            return False
        if self._exit_seen(0):
            return True
        self._alive_at_signal_count = count
        return False

    def _exit_seen(self, timeout_s: float) -> bool:
        return bool(self._exit_poller.poll(max(timeout_s, 0) * 1000))

    # -- ending -------------------------------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the worker's whole tree and reap the worker, once any stack dump asked of it is written.
        Idempotent."""
        with self._reap_lock:
            if self._exited:
                return
            if self._stack_dump_requested_at is not None:
                self._await_stack_dump(self._stack_dump_requested_at)
            kill_tree(self.pid)
            self._reap()

    def _request_stack_dump(self) -> None:
        """Ask a hung worker to show where it hung (faulthandler, in the log); :meth:`kill` waits for the dump."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, STACK_DUMP_SIGNAL)
            self._stack_dump_requested_at = time.monotonic()

    def _await_stack_dump(self, requested_at: float) -> None:
        """Wait until the worker has taken the dump signal (it is no longer pending) and had a moment to write."""
        if self._stack_dump_taken(requested_at + STACK_DUMP_START_WAIT_S):
            self._exit_seen(STACK_DUMP_WRITE_WAIT_S)
        self._stack_dump_requested_at = None

    def _stack_dump_taken(self, give_up: float) -> bool:
        while signal_pending(self.pid, STACK_DUMP_SIGNAL):
            if time.monotonic() >= give_up or self._exit_seen(0.001):
                return False
        return True

    def _dump_stacks(self, wait_s: float) -> bool:
        """Ask for the stack dump and give the worker ``wait_s`` to take the signal; True if it took it and wrote."""
        self._request_stack_dump()
        requested_at = self._stack_dump_requested_at
        if requested_at is None or not self._stack_dump_taken(requested_at + wait_s):
            return False
        self._await_stack_dump(requested_at)
        return True

    def _dump_stacks_then_freeze(self) -> None:
        """Ask for the stack dump. A worker that takes the signal at once writes it, then its process group is
        stopped (SIGSTOP, one system call), so that a CPU-burning hang takes no CPU from the post that follows. A
        worker too starved to take it at once is left to write it during the post; :meth:`kill` waits for it."""
        if self._dump_stacks(STACK_DUMP_WAIT_S):
            signal_group(self.pid, signal.SIGSTOP)

    def retire(self, grace_s: float) -> None:
        """End a healthy worker between invocations: close its input so it exits on its own, then make sure."""
        self._close_input()
        self._wait_exit(grace_s)
        self.kill()

    def terminate(self, grace_s: float) -> None:
        """Forward SIGTERM to the worker's group, give it ``grace_s`` to exit, then SIGKILL what is left."""
        if not self._exited:
            signal_group(self.pid, signal.SIGTERM)
            self._wait_exit(grace_s)
        self.kill()

    def _close_input(self) -> None:
        if self._to_worker >= 0:
            os.close(self._to_worker)
            self._to_worker = -1

    def _wait_exit(self, timeout_s: float) -> bool:
        return self._exited or self._exit_seen(timeout_s)

    def _reap_after_gone(self) -> bool:
        """After EOF or exit: reap the worker. True if it had exited on its own (a crash); False if it was alive
        with its pipe closed and had to be killed."""
        exited = self._wait_exit(EXIT_AFTER_EOF_S)
        self.kill()
        return exited

    def init_error(self) -> dict[str, Any] | None:
        """The init error a dead worker left in its pipe (a standby that failed its init), once it is reaped."""
        for frame in self._frames:
            try:
                InitErrorMessage.parse(frame)
            except InvalidMessage:
                continue
            try:
                return parse_error(frame.payload)
            except InvalidMessage as error:
                return error_object(ErrorType.INVALID_WORKER_MESSAGE, str(error))
        return None

    def _take_last_words(self) -> None:
        """Before the pipe is closed: keep the frames the dead worker left in it (an init error, say). Bounded: a
        descendant that kept the pipe open could write for ever."""
        with contextlib.suppress(OSError, FrameError):  # BlockingIOError (nothing more) is an OSError
            for _ in range(LAST_WORDS_READS):
                frames = self._decoder.read_from(self._from_worker) if not self._input_eof else None
                if frames is None:
                    return
                self._frames.extend(frames)

    def _reap(self) -> None:
        collected = self._collect_exit()
        self._registry.track(self.pid, alive=False)
        self._exited = True
        if collected is None:  # gone, its status with whoever reaped it
            self.exit_description = "exit status unknown (already reaped)"
            emit("worker_already_reaped", "a worker's exit status was taken before the supervisor reaped it",
                 level="WARNING", pid=self.pid)
        else:
            status, peak_rss_bytes = collected
            self.exit_description = describe_wait_status(status)
            self.peak_rss_bytes = max(self.peak_rss_bytes, peak_rss_bytes)
        self._poller.close()
        self._region = None  # unmapped once no posted response is a view of it
        self._take_last_words()
        os.close(self._statm)
        if self._children is not None:
            os.close(self._children)
        os.close(self._pidfd)
        os.close(self._from_worker)
        self._close_input()

    def _collect_exit(self) -> tuple[int, int] | None:
        """(wait status, peak RSS in bytes) of the dead worker, reaped here; None if it is not ours to reap: its
        pid is gone (reaped elsewhere), or a forked worker was not re-parented to us within ADOPTION_WAIT_S."""
        give_up = time.monotonic() + ADOPTION_WAIT_S
        while True:
            try:
                _, status, usage = os.wait4(self.pid, 0)
            except ChildProcessError:
                parent = parent_pid(self.pid)
                if parent is None or time.monotonic() >= give_up:
                    return None
                if parent != os.getpid():  # a fork not yet re-parented past the template's intermediate
                    time.sleep(0.001)
                continue
            return status, usage.ru_maxrss * 1024
