"""The worker's own settings, read from its environment at init: how events are decoded and results encoded.

They live here, not in the supervisor's configuration, because only the worker may import user code (a custom
serialiser is user code). An unusable value fails init with ``Runtime.InvalidConfiguration`` naming the variable,
like the supervisor's settings do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from lambda_supervisor.shared.errors import ErrorType, error_object

from .handler_loader import Handler, InitFailure
from .registration import HandlerOptions, registered_options
from .serialisers import ResolveError, resolve_callable

DECODE_BASE64 = "LAMBDA_SUPERVISOR_DECODE_BASE64"
SERIALISER = "LAMBDA_SUPERVISOR_SERIALISER"
DESERIALISER = "LAMBDA_SUPERVISOR_DESERIALISER"

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


class WorkerSetting(NamedTuple):
    variable: str
    default: str
    meaning: str


#: What the README documents (see worker_settings_table).
WORKER_SETTINGS = (
    WorkerSetting(DECODE_BASE64, "`true`",
                  "Decode base64 request bodies of HTTP events before the handler sees them "
                  "(true/false, 1/0, yes/no)."),
    WorkerSetting(DESERIALISER, "JSON (`json.loads`)",
                  "Dotted path of a function turning the event text into the handler's event, or `identity` for the "
                  "raw text."),
    WorkerSetting(SERIALISER, "JSON (`json.dumps`)",
                  "Dotted path of a function turning the handler's result into the response text or bytes, or "
                  "`identity` to post a returned str/bytes as is."),
)


def _invalid(variable: str, value: str, why: str) -> InitFailure:
    return InitFailure(error_object(ErrorType.CONFIGURATION, f"{variable}={value!r} is invalid: {why}"))


def parse_bool(variable: str, value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _invalid(variable, value, f"must be one of {', '.join(_TRUE + _FALSE)}")


def read_decode_base64(environ: Mapping[str, str]) -> bool | None:
    """The variable's value, or None when it is unset (checked before any user code runs)."""
    value = environ.get(DECODE_BASE64, "")
    return parse_bool(DECODE_BASE64, value) if value.strip() else None


def resolve_options(environ: Mapping[str, str], decode_base64: bool | None, handler: Handler) -> HandlerOptions:
    """The handler's effective options: the environment wins over ``@lambda_handler``, and base64 decoding is on
    unless someone turned it off. Resolving a serialiser path imports its module, so this runs after the handler
    was loaded (an import error of the handler's own module is then reported as such, not as a setting's)."""
    resolved = {}
    for variable in (DESERIALISER, SERIALISER):
        path = environ.get(variable, "")
        if not path.strip():
            continue
        try:
            resolved[variable] = resolve_callable(path)
        except ResolveError as error:
            raise _invalid(variable, path, str(error)) from None
    registered = registered_options(handler)
    decode = decode_base64 if decode_base64 is not None else registered.decode_base64
    return HandlerOptions(
        serialiser=resolved.get(SERIALISER) or registered.serialiser,
        deserialiser=resolved.get(DESERIALISER) or registered.deserialiser,
        decode_base64=True if decode is None else decode,
    )


def worker_settings_table() -> str:
    """The README's table of these settings, in Markdown (a test checks that the README carries exactly this)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{setting.variable}` | {setting.default} | {setting.meaning} |" for setting in WORKER_SETTINGS]
    return "\n".join(rows)
