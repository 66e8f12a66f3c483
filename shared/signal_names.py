"""Signal names for log lines, without ``signal.py``: it converts its constants into enums at import (about 3M
instructions at every start of the supervisor), where ``_signal``, its C half, has the same constants and functions.
"""

from __future__ import annotations

import _signal


def signal_name(number: int) -> str | None:
    """``signal.Signals(number).name``: the signal's name (of aliases, the first in sorted order, as the enum picks
    it), or None for a number that has none (a real-time signal between SIGRTMIN and SIGRTMAX, say)."""
    names = [name for name, value in vars(_signal).items()
             if value == number and name.startswith("SIG") and not name.startswith("SIG_") and name.isupper()]
    return min(names) if names else None
