"""A Runtime API that answers at once: the warm path timed without the emulator's own cost.

The bench emulator (``local/emulator``) is a threaded ``http.server``: it parses each request with the ``email``
package and hands events between threads under one GIL, several hundred microseconds per no-op invocation, the same
for every runtime, and most of each cycle. On Lambda the Runtime API is a compiled server. This one serves a single
purpose: each ``next`` is answered with the next event as soon as it is read, each response post with 202, every
answer in one write, from a process of its own (``python -m bench.lean_api``, so that no bench thread shares its
GIL; driven by lines on its stdin). A cycle then costs what the runtime costs, plus two loopback round trips and
this loop's few microseconds.

Events are handed out only during :meth:`LeanRuntimeApi.run`; a ``next`` that comes before waits, as a runtime's
first poll does while the bench starts it. Each event has its own request id, trace id and a deadline a minute
away, as Lambda's have. With ``pause_us``, each event is handed out that long after its ``next`` arrives (the
server sleeps meanwhile): the CPUs idle between events, as they do when events are not queued.
"""

from __future__ import annotations

import json
import select
import selectors
import socket
import subprocess
import sys
import time
from typing import IO

NEXT_SUFFIX = b"/runtime/invocation/next"
RESPONSE_SUFFIX = b"/response"
ERROR_SUFFIX = b"/error"
FUNCTION_ARN = b"arn:aws:lambda:us-east-1:000000000000:function:bench"
EVENT = b"{}"
ACCEPTED = b'{"status":"OK"}\n'
REPOSITORY = __file__.rsplit("/bench/", 1)[0]
#: How long the parent waits for the server's process to end, or for an answer to a control line.
CONTROL_TIMEOUT_S = 10.0
#: How long a run of events may take before the bench gives up on it (a runtime that died mid-run).
RUN_TIMEOUT_S = 120.0


class _Connection:
    """One runtime connection: bytes received and not yet parsed, and whether it waits in ``next``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = b""
        self.polling = False


class _Server:
    """The server's state, in its own process: events left to hand out, posts counted."""

    def __init__(self, listener: socket.socket, control: IO[str], answers: IO[str], pause_s: float = 0.0) -> None:
        self.listener = listener
        self.pause_s = pause_s
        self.control = control
        self.answers = answers
        self.selector = selectors.DefaultSelector()
        self.connections: list[_Connection] = []
        self.polls = 0
        self.to_hand_out = 0
        self.handed_out = 0
        self.answered = 0
        self.unexpected: list[str] = []
        self.target = 0
        self.started = 0.0

    def serve(self) -> None:
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.control, selectors.EVENT_READ)
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.listener:
                    self._accept()
                elif key.fileobj is self.control:
                    if not self._control():
                        return
                else:
                    self._read(key.data)

    def _accept(self) -> None:
        sock, _ = self.listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _Connection(sock)
        self.connections.append(connection)
        self.selector.register(sock, selectors.EVENT_READ, connection)

    def _control(self) -> bool:
        words = self.control.readline().split()
        if not words:  # the parent closed its end
            return False
        if words[0] == "polls":
            self._tell("polls", self.polls)
        elif words[0] == "run":
            self.to_hand_out = self.target = int(words[1])
            self.answered, self.unexpected = 0, []
            self.started = time.monotonic()
            for connection in self.connections:
                if connection.polling:
                    self._hand_out(connection)
        return True

    def _tell(self, *words: object) -> None:
        self.answers.write(" ".join(str(word) for word in words) + "\n")
        self.answers.flush()

    def _read(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(connection.sock)
            connection.sock.close()
            self.connections.remove(connection)
            return
        connection.pending += data
        while (request := _take_request(connection)) is not None:
            self._answer(connection, *request)

    def _answer(self, connection: _Connection, method: bytes, path: bytes, body: bytes) -> None:
        if method == b"GET" and path.endswith(NEXT_SUFFIX):
            self.polls += 1
            connection.polling = True
            if self.to_hand_out:
                self._hand_out(connection)
            return
        if method == b"POST" and path.endswith((RESPONSE_SUFFIX, ERROR_SUFFIX)):
            if not path.endswith(RESPONSE_SUFFIX) or body != EVENT:
                self.unexpected.append(f"{path.decode('latin-1')}: {body[:200]!r}")
            connection.sock.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: "
                                    b"%d\r\n\r\n%s" % (len(ACCEPTED), ACCEPTED))
            self.answered += 1
            if self.answered == self.target:
                self._tell("done", time.monotonic() - self.started, json.dumps(self.unexpected[:3]))
            return
        self.unexpected.append(f"{method.decode('latin-1')} {path.decode('latin-1')}")
        connection.sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    def _hand_out(self, connection: _Connection) -> None:
        if self.pause_s:
            time.sleep(self.pause_s)
        self.to_hand_out -= 1
        self.handed_out += 1
        number = self.handed_out
        connection.polling = False
        deadline_ms = int(time.time() * 1000) + 60_000
        connection.sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Lambda-Runtime-Aws-Request-Id: %08x-0000-4000-8000-%012x\r\n"
            b"Lambda-Runtime-Deadline-Ms: %d\r\nLambda-Runtime-Invoked-Function-Arn: %s\r\n"
            b"Lambda-Runtime-Trace-Id: Root=1-%08x-%024x;Parent=%016x;Sampled=0\r\n"
            b"Content-Length: %d\r\n\r\n%s"
            % (number, number, deadline_ms, FUNCTION_ARN, int(time.time()), number, number, len(EVENT), EVENT))


def _take_request(connection: _Connection) -> tuple[bytes, bytes, bytes] | None:
    """The first whole request in ``connection.pending`` (method, path, body), removed from it; None if incomplete."""
    end = connection.pending.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = connection.pending[:end].split(b"\r\n")
    method, path, _ = lines[0].split(b" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if len(connection.pending) < end + 4 + length:
        return None
    body = connection.pending[end + 4:end + 4 + length]
    connection.pending = connection.pending[end + 4 + length:]
    return method, path, body


def main() -> None:
    """``python -m bench.lean_api [PAUSE_US]``"""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    pause_us = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = _Server(listener, sys.stdin, sys.stdout, pause_us / 1_000_000)
    server._tell("port", listener.getsockname()[1])
    server.serve()


class LeanRuntimeApi:
    """The server's process, as a context manager; ``address`` is what runtimes are given. It has the two members
    the bench's runtimes wait on at start (``next_poll_count``, ``wait_next_polled``). Another server that speaks
    the same control protocol is driven by overriding :meth:`command` (bench/go_api.py)."""

    name = "the lean Runtime API"

    def __init__(self, python: str = sys.executable, *, pause_us: int = 0) -> None:
        self._python = python
        self._pause_us = pause_us
        self._process: subprocess.Popen[str] | None = None
        self.address = ""

    def command(self) -> list[str]:
        return [self._python, "-m", "bench.lean_api", str(self._pause_us)]

    def __enter__(self) -> LeanRuntimeApi:
        self._process = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                         cwd=REPOSITORY)
        self.address = f"127.0.0.1:{self._ask(None, 'port', CONTROL_TIMEOUT_S)}"
        return self

    def __exit__(self, *_exc: object) -> None:
        process = self._process
        if process is not None:
            assert process.stdin is not None
            process.stdin.close()  # end of its control input: it exits
            try:
                process.wait(CONTROL_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _ask(self, line: str | None, answer: str, timeout_s: float) -> str:
        """Send ``line`` (if any) and return the rest of the answer line that starts with ``answer``; TimeoutError
        after ``timeout_s`` without one (each answer is one line, read whole: nothing waits in the pipe's buffer)."""
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        if line is not None:
            process.stdin.write(line + "\n")
            process.stdin.flush()
        if not select.select([process.stdout], [], [], timeout_s)[0]:
            raise TimeoutError(f"{self.name} gave no {answer!r} answer within {timeout_s} s")
        reply = process.stdout.readline()
        word, _, rest = reply.partition(" ")
        if word != answer:
            raise RuntimeError(f"{self.name} answered {reply!r}, not {answer!r}")
        return rest.strip()

    @property
    def next_poll_count(self) -> int:
        return int(self._ask("polls", "polls", CONTROL_TIMEOUT_S))

    def wait_next_polled(self, count: int = 1, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.next_poll_count < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"GET /next was not called {count} time(s) within {timeout} s")
            time.sleep(0.01)

    def run(self, count: int, timeout_s: float = RUN_TIMEOUT_S) -> float:
        """Hand out ``count`` no-op events one after the other (the runtime polls for each); the seconds from the
        first hand-out to the last post. RuntimeError if a post was not the expected response, TimeoutError if the
        posts stop coming."""
        elapsed, _, unexpected = self._ask(f"run {count}", "done", timeout_s).partition(" ")
        if json.loads(unexpected):
            raise RuntimeError(f"unexpected requests or posts: {unexpected}")
        return float(elapsed)


if __name__ == "__main__":
    main()
