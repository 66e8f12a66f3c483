"""The ``context`` argument handlers receive: awslambdaric 4.x's ``LambdaContext``, attribute for attribute.

The same names, types and values: the function's settings are the environment's strings (``memory_limit_in_mb``
is a ``str``, None when unset); ``identity`` is always a ``CognitoIdentity`` (its fields None without one);
``client_context`` is None without a ``Lambda-Runtime-Client-Context`` header, else a ``ClientContext`` whose
``client`` is None without a ``client`` object; its ``w3c`` entry is taken out and offered by ``w3c()``;
``tenant_id`` is the ``Lambda-Runtime-Aws-Tenant-Id`` header or None; ``log(msg)`` writes ``str(msg)`` to stdout.
A header that is not JSON fails the invocation with ``Runtime.LambdaContextUnmarshalError``, as in awslambdaric.
``event_source`` is this runtime's addition.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping

from lambda_supervisor.shared import worker_env

from .event_source import EventSource

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from lambda_supervisor.shared.named_tuple import NamedTuple

#: The W3C trace-context fields ``w3c()`` offers (string values only), as awslambdaric.
W3C_FIELDS = ("traceparent", "tracestate", "baggage")


class ContextUnmarshalError(Exception):
    """A context header is not the JSON object it should be; the message is the error's."""


class FunctionInfo(NamedTuple):
    """What stays the same for every invocation of this function instance (read once from the environment)."""

    function_name: str | None
    function_version: str | None
    memory_limit_in_mb: str | None
    log_group_name: str | None
    log_stream_name: str | None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> FunctionInfo:
        return cls(
            function_name=environ.get(worker_env.FUNCTION_NAME),
            function_version=environ.get(worker_env.FUNCTION_VERSION),
            memory_limit_in_mb=environ.get(worker_env.FUNCTION_MEMORY_SIZE),
            log_group_name=environ.get(worker_env.LOG_GROUP_NAME),
            log_stream_name=environ.get(worker_env.LOG_STREAM_NAME),
        )


class CognitoIdentity:
    """``context.identity``: the Amazon Cognito identity of an invocation through the AWS Mobile SDK."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.cognito_identity_id: Any = data.get("cognitoIdentityId")
        self.cognito_identity_pool_id: Any = data.get("cognitoIdentityPoolId")

    def __repr__(self) -> str:
        return (f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
                f"cognito_identity_pool_id={self.cognito_identity_pool_id}])")


class Client:
    """``context.client_context.client``: the mobile application that invoked the function."""

    __slots__ = ("app_package_name", "app_title", "app_version_code", "app_version_name", "installation_id")
    #: In awslambdaric's order, for ``repr``.
    _FIELDS = ("installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name")

    def __init__(self, data: Mapping[str, Any]) -> None:
        for name in self._FIELDS:
            setattr(self, name, data.get(name))

    def __repr__(self) -> str:
        fields = ",".join(f"{name}={getattr(self, name)}" for name in self._FIELDS)
        return f"Client([{fields}])"


class ClientContext:
    """``context.client_context``: what the AWS Mobile SDK's caller sent (``custom``, ``env``, ``client``)."""

    __slots__ = ("client", "custom", "env")

    def __init__(self, data: Mapping[str, Any]) -> None:
        client = data.get("client")
        if client is not None and not isinstance(client, dict):
            raise ContextUnmarshalError("Unable to parse Client Context JSON: 'client' is not a JSON object")
        self.custom: Any = data.get("custom")
        self.env: Any = data.get("env")
        self.client: Client | None = Client(client) if client is not None else None

    def __repr__(self) -> str:
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


def _parse_header(raw: str | None, name: str) -> dict[str, Any] | None:
    """A JSON context header: None when absent, empty or ``null``; ContextUnmarshalError when not a JSON object."""
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except Exception as error:  # ValueError, RecursionError (nested too deeply): as awslambdaric, any failure
        raise ContextUnmarshalError(f"Unable to parse {name} JSON: {error}") from None
    if value is not None and not isinstance(value, dict):
        raise ContextUnmarshalError(f"Unable to parse {name} JSON: not a JSON object")
    return value


def _take_w3c(client_context: dict[str, Any] | None) -> dict[str, str]:
    """Remove ``w3c`` from the client context; its allowed string fields are what ``context.w3c()`` returns."""
    raw = client_context.pop("w3c", None) if client_context is not None else None
    if not isinstance(raw, dict):
        return {}
    return {name: raw[name] for name in W3C_FIELDS if isinstance(raw.get(name), str)}


class LambdaContext:
    """Per-invocation context; ``get_remaining_time_in_millis`` counts down to the Runtime API's deadline."""

    def __init__(
        self,
        function: FunctionInfo,
        *,
        aws_request_id: str,
        deadline_ms: int,
        invoked_function_arn: str | None,
        client_context: str | None = None,
        cognito_identity: str | None = None,
        tenant_id: str | None = None,
        event_source: EventSource = EventSource.DIRECT,
    ) -> None:
        client_data = _parse_header(client_context, "Client Context")
        identity_data = _parse_header(cognito_identity, "Cognito Identity")
        self.aws_request_id = aws_request_id
        self.log_group_name = function.log_group_name
        self.log_stream_name = function.log_stream_name
        self.function_name = function.function_name
        self.memory_limit_in_mb = function.memory_limit_in_mb
        self.function_version = function.function_version
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        self._w3c_fields = _take_w3c(client_data)
        self.client_context = ClientContext(client_data) if client_data is not None else None
        self.identity = CognitoIdentity(identity_data or {})
        #: Which service sent the event (a str enum: "direct", "apigateway-rest", "sqs", ...); see event_source.py.
        self.event_source = event_source
        self._epoch_deadline_time_in_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._epoch_deadline_time_in_ms - int(time.time() * 1000), 0)

    def w3c(self) -> dict[str, str]:
        """The W3C trace context the caller sent in the client context (``traceparent``, ``tracestate``,
        ``baggage``), a new dict each call."""
        return dict(self._w3c_fields)

    def log(self, msg: Any) -> None:
        """Write ``str(msg)`` to the function's log, as is (no newline added)."""
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},log_group_name={self.log_group_name},"
            f"log_stream_name={self.log_stream_name},function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},client_context={self.client_context},"
            f"identity={self.identity},tenant_id={self.tenant_id}])"
        )
