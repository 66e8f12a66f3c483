"""The floor: the smallest runtime loop we can write, in one process, no worker.

``python bench/floor.py module.function`` with AWS_LAMBDA_RUNTIME_API set and the task root on sys.path: GET next,
call the handler, POST its JSON response, over one keep-alive requests.Session. No error handling beyond what the
benchmark needs; it exists to show what the HTTP round trips alone cost.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

import requests


def main() -> int:
    module_name, _, function_name = sys.argv[1].rpartition(".")
    handler = getattr(importlib.import_module(module_name), function_name)
    base = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime/invocation"
    session = requests.Session()
    session.trust_env = False
    while True:
        reply = session.get(f"{base}/next", timeout=(3, None))
        request_id = reply.headers["Lambda-Runtime-Aws-Request-Id"]
        result = handler(json.loads(reply.content), None)
        session.post(f"{base}/{request_id}/response", data=json.dumps(result).encode(), timeout=(3, 30))


if __name__ == "__main__":
    raise SystemExit(main())
