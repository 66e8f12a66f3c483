"""Lambda Managed Instances: each concurrent worker writes its output to a log stream of its own.

Lambda names a unix socket in ``_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET``; each worker connects one stream socket
to it and makes that its stdout and stderr, as awslambdaric's multi-concurrent workers do
(``lambda_multi_concurrent_utils.py``). The supervisor passes the variable only when it runs several slots; the
fork template keeps the supervisor's stdout (its init's output is the environment's), and each worker forked from
it connects its own.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping

from lambda_supervisor.shared import worker_env


def connect_log_stream(environ: Mapping[str, str]) -> None:
    """Point stdout and stderr at a log stream of this worker's own, when Lambda provides one. On failure the
    inherited output is kept, and the reason written to it."""
    path = environ.get(worker_env.LOG_SOCKET)
    if not path:
        return
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stream:
            stream.connect(path)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(stream.fileno(), 1)
            os.dup2(stream.fileno(), 2)
    except OSError as error:
        print(f"lambda-supervisor worker: no log stream of its own ({error}); writing to the shared one",
              file=sys.stderr, flush=True)
