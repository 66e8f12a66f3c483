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


def _with_requests(address: str, handler: Callable[[Any, Any], Any]) -> None:
    import requests

    session = requests.Session()
    session.trust_env = False
    base = f"http://{address}{PATH}"
    while True:
        reply = session.get(f"{base}/next", timeout=(3, None))
        request_id = reply.headers["Lambda-Runtime-Aws-Request-Id"]
        result = handler(json.loads(reply.content), None)
        session.post(f"{base}/{request_id}/response", data=json.dumps(result).encode(), timeout=(3, 30))


def _with_http_client(address: str, handler: Callable[[Any, Any], Any]) -> None:
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port))
    while True:
        connection.request("GET", f"{PATH}/next")
        reply = connection.getresponse()
        event = reply.read()
        request_id = reply.getheader("Lambda-Runtime-Aws-Request-Id")
        result = json.dumps(handler(json.loads(event), None)).encode()
        connection.request("POST", f"{PATH}/{request_id}/response", body=result,
                           headers={"Content-Type": "application/json"})
        connection.getresponse().read()


def _with_our_connection(address: str, handler: Callable[[Any, Any], Any]) -> None:
    from lambda_supervisor.supervisor.http_connection import HttpConnection

    host, _, port = address.rpartition(":")
    connection = HttpConnection(host, int(port), connect_timeout_s=3, io_timeout_s=30, user_agent="floor")
    while True:
        reply = connection.request("GET", f"{PATH}/next", long_poll=True)
        request_id = reply.headers["lambda-runtime-aws-request-id"]
        result = json.dumps(handler(json.loads(reply.body), None)).encode()
        connection.request("POST", f"{PATH}/{request_id}/response", result, {"Content-Type": "application/json"})


def _read_exactly(fd: int, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = os.read(fd, count - len(data))
        if not chunk:
            raise EOFError("the other process closed the pipe")
        data += chunk
    return data


def _serve_in_child(events: int, results: int, handler: Callable[[Any, Any], Any]) -> None:
    """The second process: a length-prefixed event in, the handler's JSON result out, until the pipe closes."""
    try:
        while True:
            event = _read_exactly(events, int.from_bytes(_read_exactly(events, 4), "big"))
            result = json.dumps(handler(json.loads(event), None)).encode()
            os.write(results, len(result).to_bytes(4, "big") + result)
    except EOFError:
        os._exit(0)


def _with_two_processes(address: str, handler: Callable[[Any, Any], Any]) -> None:
    """The supervisor's design at its least: the event crosses a pipe to a forked second process, which runs the
    handler, and its result comes back the same way; both wait on one CPU, as with the CPU hand-off. No deadline,
    no fault handling, no context, no frame header."""
    from lambda_supervisor.supervisor.http_connection import HttpConnection

    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    to_child, from_child = os.pipe(), os.pipe()
    if os.fork() == 0:
        _serve_in_child(to_child[0], from_child[1], handler)
    host, _, port = address.rpartition(":")
    connection = HttpConnection(host, int(port), connect_timeout_s=3, io_timeout_s=30, user_agent="floor")
    while True:
        reply = connection.request("GET", f"{PATH}/next", long_poll=True)
        request_id = reply.headers["lambda-runtime-aws-request-id"]
        event = bytes(reply.body)
        os.write(to_child[1], len(event).to_bytes(4, "big") + event)
        result = _read_exactly(from_child[0], int.from_bytes(_read_exactly(from_child[0], 4), "big"))
        connection.request("POST", f"{PATH}/{request_id}/response", result, {"Content-Type": "application/json"})


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
