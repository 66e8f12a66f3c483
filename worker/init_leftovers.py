"""What the user's init left behind that a fork of this process would share or lose, sent in the ready frame
(shared/protocol.py's InitLeftovers): the supervisor's ``auto`` strategy forks workers only when it is nothing.

A socket opened at import (a database connection, say) would be shared by every forked worker, so one that dies
mid-query leaves the next a corrupted connection; a thread started at import does not exist in a fork.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from lambda_supervisor.shared.protocol import MAX_INIT_LEFTOVERS, InitLeftovers

#: stdin, stdout and stderr: every worker shares them with the supervisor, forked or not.
STANDARD_FDS = frozenset({0, 1, 2})


def init_leftovers(own_fds: Collection[int]) -> InitLeftovers:
    """Counted now, each capped at what a ready frame may carry; ``own_fds`` are the worker's own descriptors
    (its pipe ends, the fork template's control socket), which are not the user's."""
    return InitLeftovers(open_sockets=min(_open_sockets(own_fds), MAX_INIT_LEFTOVERS),
                         extra_threads=min(_extra_threads(), MAX_INIT_LEFTOVERS))


def _open_sockets(own_fds: Collection[int]) -> int:
    count = 0
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in STANDARD_FDS or fd in own_fds:
            continue
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                count += 1
        except OSError:  # closed since the listing (the listing's own descriptor is)
            continue
    return count


def _extra_threads() -> int:
    """Native threads too (a C extension's), not only ``threading``'s: none of them is in a fork."""
    try:
        return max(len(os.listdir("/proc/self/task")) - 1, 0)
    except OSError:
        return 0
