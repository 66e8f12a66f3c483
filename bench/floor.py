"""The floor: the smallest runtime loop we can write, in one process, no worker.

``python bench/floor.py [--client requests|http.client|ours|ours-two-processes] module.function`` with
AWS_LAMBDA_RUNTIME_API set and the task root on sys.path: GET next, call the handler, POST its JSON response, over one
keep-alive connection. No error handling beyond what the benchmark needs; it shows what the HTTP round trips alone
cost with requests (the design card's client), the standard library's http.client, and the supervisor's own
connection. ``ours-two-processes`` adds the least the supervisor's design needs: the handler runs in a second
process, the event and its result cross a pipe, and both processes wait on one CPU. The gap between it and
lambda-supervisor is what the supervisor's and the worker's own work per invocation costs.
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import json
import os
from collections.abc import Callable
from typing import Any

PATH = "/2018-06-01/runtime/invocation"


def _json_results(handler: Callable[[Any, Any], Any]) -> Callable[[bytes], bytes]:
    """The handler as event JSON in, result JSON out."""
    return lambda event: json.dumps(handler(json.loads(event), None)).encode()


def _with_requests(address: str, handler: Callable[[Any, Any], Any]) -> None:
    import requests

    session = requests.Session()
    session.trust_env = False
    base = f"http://{address}{PATH}"
    result_of = _json_results(handler)
    while True:
        reply = session.get(f"{base}/next", timeout=(3, None))
        request_id = reply.headers["Lambda-Runtime-Aws-Request-Id"]
        session.post(f"{base}/{request_id}/response", data=result_of(reply.content), timeout=(3, 30))


def _with_http_client(address: str, handler: Callable[[Any, Any], Any]) -> None:
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port))
    result_of = _json_results(handler)
    while True:
        connection.request("GET", f"{PATH}/next")
        reply = connection.getresponse()
        event = reply.read()
        request_id = reply.getheader("Lambda-Runtime-Aws-Request-Id")
        connection.request("POST", f"{PATH}/{request_id}/response", body=result_of(event),
                           headers={"Content-Type": "application/json"})
        connection.getresponse().read()


def _serve_our_connection(address: str, result_of: Callable[[bytes], bytes]) -> None:
    """GET next, ``result_of`` the event, POST it, over the supervisor's own connection."""
    from lambda_supervisor.supervisor.http_connection import HttpConnection

    host, _, port = address.rpartition(":")
    connection = HttpConnection(host, int(port), connect_timeout_s=3, io_timeout_s=30, user_agent="floor")
    while True:
        reply = connection.request("GET", f"{PATH}/next", long_poll=True)
        request_id = reply.headers["lambda-runtime-aws-request-id"]
        result = result_of(bytes(reply.body))
        connection.request("POST", f"{PATH}/{request_id}/response", result, {"Content-Type": "application/json"})


def _with_our_connection(address: str, handler: Callable[[Any, Any], Any]) -> None:
    _serve_our_connection(address, _json_results(handler))


def _read_exactly(fd: int, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = os.read(fd, count - len(data))
        if not chunk:
            raise EOFError("the other process closed the pipe")
        data += chunk
    return data


def _read_prefixed(fd: int) -> bytes:
    return _read_exactly(fd, int.from_bytes(_read_exactly(fd, 4), "big"))


def _prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _serve_in_child(events: int, results: int, result_of: Callable[[bytes], bytes]) -> None:
    """The second process: a length-prefixed event in, its length-prefixed result out, until the pipe closes."""
    try:
        while True:
            os.write(results, _prefixed(result_of(_read_prefixed(events))))
    except EOFError:
        os._exit(0)


def _with_two_processes(address: str, handler: Callable[[Any, Any], Any]) -> None:
    """The supervisor's design at its least: the event crosses a pipe to a forked second process, which runs the
    handler, and its result comes back the same way; both wait on one CPU, as with the CPU hand-off. No deadline,
    no fault handling, no context, no frame header."""
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    to_child, from_child = os.pipe(), os.pipe()
    if os.fork() == 0:
        _serve_in_child(to_child[0], from_child[1], _json_results(handler))

    def through_the_child(event: bytes) -> bytes:
        os.write(to_child[1], _prefixed(event))
        return _read_prefixed(from_child[0])

    _serve_our_connection(address, through_the_child)


LOOPS = {"requests": _with_requests, "http.client": _with_http_client, "ours": _with_our_connection,
         "ours-two-processes": _with_two_processes}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", choices=list(LOOPS), default="requests")
    parser.add_argument("handler")
    options = parser.parse_args()
    module_name, _, function_name = options.handler.rpartition(".")
    handler = getattr(importlib.import_module(module_name), function_name)
    LOOPS[options.client](os.environ["AWS_LAMBDA_RUNTIME_API"], handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
