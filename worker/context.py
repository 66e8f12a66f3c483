"""The ``context`` argument handlers receive, attribute-compatible with awslambdaric's ``LambdaContext``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from .event_source import EventSource


@dataclass(frozen=True)
class FunctionInfo:
    """What stays the same for every invocation of this function instance (read once from the environment)."""

    function_name: str
    function_version: str
    memory_limit_in_mb: int
    log_group_name: str
    log_stream_name: str

    @classmethod
    def from_environ(cls, environ: dict[str, str]) -> FunctionInfo:
        memory = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        return cls(
            function_name=environ.get("AWS_LAMBDA_FUNCTION_NAME", ""),
            function_version=environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            memory_limit_in_mb=int(memory) if memory.isdigit() else 0,
            log_group_name=environ.get("AWS_LAMBDA_LOG_GROUP_NAME", ""),
            log_stream_name=environ.get("AWS_LAMBDA_LOG_STREAM_NAME", ""),
        )


class CognitoIdentity:
    """``context.identity`` for invocations through the AWS Mobile SDK."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.cognito_identity_id: str | None = data.get("cognitoIdentityId")
        self.cognito_identity_pool_id: str | None = data.get("cognitoIdentityPoolId")

    def __repr__(self) -> str:
        return f"CognitoIdentity(id={self.cognito_identity_id!r}, pool_id={self.cognito_identity_pool_id!r})"


class Client:
    """``context.client_context.client``."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.installation_id: str | None = data.get("installation_id")
        self.app_title: str | None = data.get("app_title")
        self.app_version_name: str | None = data.get("app_version_name")
        self.app_version_code: str | None = data.get("app_version_code")
        self.app_package_name: str | None = data.get("app_package_name")


class ClientContext:
    """``context.client_context`` for invocations through the AWS Mobile SDK."""

    def __init__(self, data: dict[str, Any]) -> None:
        client = data.get("client")
        self.client: Client | None = Client(client) if isinstance(client, dict) else None
        self.custom: Any = data.get("custom")
        self.env: Any = data.get("env")


def _json_object(raw: str | None) -> dict[str, Any] | None:
    """Parse an optional JSON header value; a malformed one is treated as absent rather than failing the call."""
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        return None
    return value if isinstance(value, dict) else None


class LambdaContext:
    """Per-invocation context; ``get_remaining_time_in_millis`` counts down to the Runtime API's deadline."""

    def __init__(
        self,
        function: FunctionInfo,
        *,
        aws_request_id: str,
        deadline_ms: int,
        invoked_function_arn: str,
        client_context: str | None = None,
        cognito_identity: str | None = None,
        event_source: EventSource = EventSource.DIRECT,
    ) -> None:
        self.aws_request_id = aws_request_id
        self.function_name = function.function_name
        self.function_version = function.function_version
        self.memory_limit_in_mb = function.memory_limit_in_mb
        self.log_group_name = function.log_group_name
        self.log_stream_name = function.log_stream_name
        self.invoked_function_arn = invoked_function_arn
        #: Which service sent the event (a str enum: "direct", "apigateway-rest", "sqs", ...); see event_source.py.
        self.event_source = event_source
        self._deadline_ms = deadline_ms
        identity = _json_object(cognito_identity)
        self.identity: CognitoIdentity | None = CognitoIdentity(identity) if identity is not None else None
        context = _json_object(client_context)
        self.client_context: ClientContext | None = ClientContext(context) if context is not None else None

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def __repr__(self) -> str:
        return (
            f"LambdaContext(aws_request_id={self.aws_request_id!r}, function_name={self.function_name!r}, "
            f"function_version={self.function_version!r}, invoked_function_arn={self.invoked_function_arn!r}, "
            f"event_source={str(self.event_source)!r})"
        )
