"""Faults the emulator can inject into the runtime-side requests, to prove a runtime survives a flaky Runtime API.

``emulator.inject(path_pattern, fault, times=n)`` arms a fault for the next ``n`` runtime requests whose path
matches (``re.search``); each matching request takes the fault instead of (or, for :class:`Delay`, before) its
normal handling. Faults fire before the emulator handles the request, so a faulted post is never recorded: a
runtime that retries it produces exactly one post (except :class:`LostAnswer`, whose post is recorded).
:meth:`RuntimeApiEmulator.restart` is the other kind of outage: the emulator stops listening, drops every
connection, and listens again on the same port.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Status:
    """Answer with this HTTP status (and a JSON error object) instead of handling the request."""

    code: int = 500


@dataclass(frozen=True)
class Reset:
    """Read the request, then reset the connection (TCP RST) without answering."""


@dataclass(frozen=True)
class LostAnswer:
    """Handle the request, then reset the connection instead of answering: the API saw the post, the runtime never
    learns it (the one fault after which a retried post is recorded twice)."""


@dataclass(frozen=True)
class Delay:
    """Hold the request this long, then handle it normally (a slow Runtime API)."""

    seconds: float


Fault = Status | Reset | Delay | LostAnswer


@dataclass
class Injection:
    """One armed fault; ``fired`` counts the requests it has hit so far. Changed under the emulator's lock."""

    pattern: re.Pattern[str]
    fault: Fault
    method: str | None
    remaining: int | None  # None: every matching request, until cleared
    fired: int = 0

    def take(self, method: str, path: str) -> bool:
        """Whether this request gets the fault (counting it if so)."""
        if self.method is not None and self.method != method:
            return False
        if not self.pattern.search(path):
            return False
        if self.remaining is not None:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
        self.fired += 1
        return True

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0
