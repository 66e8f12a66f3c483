"""The project's Runtime API emulator, as the benchmark needs it: no Nagle delay, and post arrival times.

The stock emulator writes a reply's headers and body in two sends; with Nagle's algorithm on, the client's delayed
ACK holds the second one for ~40 ms, which would make every runtime look like 11 invocations per second. The
subclass only sets TCP_NODELAY on accepted connections and timestamps each post as it arrives; the emulator module
itself is untouched. With ``one_write``, each reply goes out in one send instead, as Go's net/http (Lambda's
Runtime API) sends a small answer: the two sends cost a runtime that reads the headers before the body has come a
second wake-up per answer (README, "Since 03:13").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from email.message import Message
from typing import Any, NamedTuple

from lambda_supervisor.local.emulator import server

_POST_PATH = server._POST_PATH


class _NoDelayHandler(server._Handler):
    disable_nagle_algorithm = True


class _OneWriteHandler(_NoDelayHandler):
    """Headers and body gathered in a buffer and sent together (a body over the buffer goes out in a send of its
    own, as with Go's 4 KiB buffer)."""

    wbufsize = 1 << 16

    def _send(self, reply: server.Reply) -> None:
        super()._send(reply)
        self.wfile.flush()  # here, not after the handler returns: a failed send must reach _handle's requeue


class Arrival(NamedTuple):
    wall: float  # time.time(), comparable with deadline_ms and with a handler's own time.time()
    monotonic: float  # comparable with InvocationRecord.submitted_at
    kind: str  # "response" or "error"


class BenchEmulator(server.RuntimeApiEmulator):
    def __init__(self, *, one_write: bool = False, **kwargs: Any) -> None:
        super().__init__("127.0.0.1", 0, **kwargs)
        self._server.RequestHandlerClass = _OneWriteHandler if one_write else _NoDelayHandler
        self._arrivals: dict[str, Arrival] = {}
        self._arrivals_lock = threading.Lock()

    def _runtime_request(
        self, method: str, path: str, headers: Message[str, str], body: bytes, alive: Callable[[], bool]
    ) -> server.Reply | None:
        match = _POST_PATH.match(path) if method == "POST" else None
        if match is not None:
            arrival = Arrival(time.time(), time.monotonic(), match[2])
            with self._arrivals_lock:
                self._arrivals.setdefault(match[1], arrival)
        return super()._runtime_request(method, path, headers, body, alive)

    def arrival(self, request_id: str) -> Arrival:
        """When the runtime's first post for ``request_id`` arrived (call after wait_outcome)."""
        with self._arrivals_lock:
            return self._arrivals[request_id]
