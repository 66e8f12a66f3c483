"""The environment the supervisor gives the worker: the names of the variables it sets and the worker reads.

The worker gets Lambda's environment without the Runtime API address (only the supervisor talks to Lambda),
with the settings below resolved by the supervisor's configuration (defaults filled in, values checked).
"""

from __future__ import annotations

#: Removed from the worker's environment.
RUNTIME_API = "AWS_LAMBDA_RUNTIME_API"

HANDLER = "_HANDLER"
TASK_ROOT = "LAMBDA_TASK_ROOT"
FUNCTION_NAME = "AWS_LAMBDA_FUNCTION_NAME"
FUNCTION_VERSION = "AWS_LAMBDA_FUNCTION_VERSION"
FUNCTION_MEMORY_SIZE = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
LOG_GROUP_NAME = "AWS_LAMBDA_LOG_GROUP_NAME"
LOG_STREAM_NAME = "AWS_LAMBDA_LOG_STREAM_NAME"
LOG_FORMAT = "AWS_LAMBDA_LOG_FORMAT"
LOG_LEVEL = "AWS_LAMBDA_LOG_LEVEL"
#: The largest result the worker may send, in bytes.
MAX_RESPONSE_BYTES = "LAMBDA_SUPERVISOR_MAX_RESPONSE_BYTES"
#: Resource limits the worker applies to itself before the user's init (shared/rlimits.py's format).
RLIMITS = "LAMBDA_SUPERVISOR_RLIMITS"
#: Lambda Managed Instances: a unix socket each concurrent worker connects to for a log stream of its own (its
#: stdout and stderr). Passed to the workers only when the supervisor runs several slots.
LOG_SOCKET = "_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET"

#: Lambda's limit for a synchronous response payload (6 MB as Lambda counts it): the default of MAX_RESPONSE_BYTES.
LAMBDA_RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024
#: What a frame from the worker may carry beyond the response limit: room for an error object's stack trace.
FRAME_HEADROOM_BYTES = 256 * 1024


def frame_payload_limit(max_response_bytes: int) -> int:
    """The largest payload the supervisor reads from a worker (and the size of its shared-memory region), for a
    response limit of ``max_response_bytes``: never below Lambda's own limit, plus the headroom."""
    return max(max_response_bytes, LAMBDA_RESPONSE_LIMIT_BYTES) + FRAME_HEADROOM_BYTES
