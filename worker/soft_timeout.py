"""The soft timeout: an exception raised inside the handler shortly before the hard kill.

The supervisor kills a handler at its deadline no matter what; that loses whatever the handler was doing. With
``LAMBDA_SUPERVISOR_SOFT_TIMEOUT_MS`` the worker arms a one-shot ``SIGALRM`` for that long before the deadline,
whose handler raises :class:`SoftTimeoutError` in the main thread, so the handler can close files, release locks,
and have its error reported with its own stack. A handler that swallows it is still killed at the deadline.
Because it uses ``SIGALRM`` (Python only delivers signals to the main thread), it is off by default: handler code
that uses ``signal.alarm`` itself should leave it off.
"""

from __future__ import annotations

import _signal as signal  # not signal.py: its enums cost every start (as in the supervisor)
import time
from types import FrameType


class SoftTimeoutError(TimeoutError):
    """Raised inside the handler when its soft timeout expires; the hard kill follows at the deadline."""


def _raise_soft_timeout(_signum: int, _frame: FrameType | None) -> None:
    raise SoftTimeoutError("the invocation reached its soft timeout; the worker is killed at the deadline")


def arm(soft_deadline_ms: int | None) -> bool:
    """Schedule the one-shot alarm; returns whether it was armed."""
    if not soft_deadline_ms:
        return False
    delay_s = soft_deadline_ms / 1000 - time.time()
    signal.signal(signal.SIGALRM, _raise_soft_timeout)
    signal.setitimer(signal.ITIMER_REAL, max(delay_s, 0.001))
    return True


def disarm() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)
