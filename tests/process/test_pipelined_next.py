"""The real supervisor asks for ``next`` in the same write as a response post (HTTP/1.1 pipelining): a bare Runtime
API on a socket holds each post's answer until it has read what follows the post on the connection. Without
pipelining nothing would follow, and the read would time out."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bare_http import Messages
from conftest import FAULTS, clean_environment

NEXT_PATH = "/2018-06-01/runtime/invocation/next"
ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n"
READ_TIMEOUT_S = 20.0


class _Requests(Messages):
    """The requests the supervisor's connection brings: (method, path, body) each."""

    def request(self) -> tuple[str, str, bytes]:
        start, _, body = self.next()
        method, path, _ = start.decode("latin-1").split(" ")
        return method, path, body


def _event(request_id: str, body: bytes) -> bytes:
    deadline_ms = int(time.time() * 1000) + 60_000
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {request_id}\r\n"
            f"Lambda-Runtime-Deadline-Ms: {deadline_ms}\r\n"
            f"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:000000000000:function:f\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@contextmanager
def _supervisor_connected(**settings: str) -> Iterator[_Requests]:
    """A supervisor (``faults.echo``) started against a listening socket; its connection's requests."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        environment = clean_environment()
        environment.update(AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{listener.getsockname()[1]}", **settings)
        process = subprocess.Popen([sys.executable, "-m", "lambda_supervisor.supervisor", "run", "faults.echo",
                                    "--task-root", str(FAULTS)], env=environment, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            listener.settimeout(60)
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(READ_TIMEOUT_S)
                yield _Requests(connection)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:  # mid-post, SIGTERM waits for the answer (a failed test never sent it)
                process.kill()
                process.wait(10)


def _serve(requests: _Requests, number: int) -> None:
    """Hand out event ``number`` and read its response post."""
    requests.sock.sendall(_event(f"r{number}", json.dumps({"n": number}).encode()))
    method, path, body = requests.request()
    assert (method, path) == ("POST", f"/2018-06-01/runtime/invocation/r{number}/response")
    assert json.loads(body)["event"] == {"n": number}


def test_next_is_written_behind_each_response_post_before_its_answer() -> None:
    with _supervisor_connected(LAMBDA_SUPERVISOR_RESPAWN="fresh") as requests:  # no reserve to start, ever
        assert requests.request()[:2] == ("GET", NEXT_PATH)  # init is done
        for number in (1, 2, 3):
            _serve(requests, number)
            assert requests.request()[:2] == ("GET", NEXT_PATH), "next came before the post was answered"
            requests.sock.sendall(ACCEPTED)


def test_next_waits_for_the_post_while_a_standby_is_to_be_started() -> None:
    """``spare`` starts its standby after the first response: ``next`` comes only once that is done (the 202 is
    read first); from then on it is pipelined."""
    with _supervisor_connected(LAMBDA_SUPERVISOR_RESPAWN="spare") as requests:
        assert requests.request()[:2] == ("GET", NEXT_PATH)
        _serve(requests, 1)
        assert requests.data == b"", "nothing came with the first post"
        requests.sock.sendall(ACCEPTED)
        assert requests.request()[:2] == ("GET", NEXT_PATH)
        _serve(requests, 2)
        assert requests.request()[:2] == ("GET", NEXT_PATH), "next came before the second post was answered"
        requests.sock.sendall(ACCEPTED)


def test_with_pipelining_off_next_waits_for_the_posts_answer() -> None:
    with _supervisor_connected(LAMBDA_SUPERVISOR_PIPELINE_NEXT="off") as requests:
        assert requests.request()[:2] == ("GET", NEXT_PATH)
        requests.sock.sendall(_event("r1", b"{}"))
        assert requests.request()[:2] == ("POST", "/2018-06-01/runtime/invocation/r1/response")
        assert requests.data == b"", "nothing came with the post"
        requests.sock.sendall(ACCEPTED)
        assert requests.request()[:2] == ("GET", NEXT_PATH)
