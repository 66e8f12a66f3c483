"""Threads started with the supervisor's handled signals blocked, so that the kernel delivers every SIGTERM, SIGINT
and SIGCHLD to the main thread.

Python runs signal handlers only on the main thread. The kernel may hand a process-directed signal to any thread
that does not block it; handed to a slot's or the idle reaper's thread, a SIGTERM was only noted as pending, and the
main thread, blocked in its wait for shutdown (or in ``next``), never woke to run the handler: the runtime ignored
it until it was killed. A thread inherits its creator's signal mask, so blocking them around the start leaves no
window; a signal that arrives meanwhile waits until the main thread unblocks it.
"""

from __future__ import annotations

import _signal as signal  # not signal.py: its enums cost every start
import contextlib

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's
if TYPE_CHECKING:
    from collections.abc import Iterator

#: The signals the supervisor handles (loop.py), which only its main thread may receive.
HANDLED = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}


@contextlib.contextmanager
def handled_signals_blocked() -> Iterator[None]:
    """Start threads in this block: they never receive the handled signals."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
