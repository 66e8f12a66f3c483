"""The worker's own settings, read from its environment at init: how events are decoded, results encoded and output
written.

They live here, not in the supervisor's configuration, because only the worker may import user code (a custom
serialiser is user code). An unusable value fails init with ``Runtime.InvalidConfiguration`` naming the variable,
like the supervisor's settings do.
"""

from __future__ import annotations

from collections.abc import Mapping

from lambda_supervisor.shared.errors import ErrorType, error_object

from .handler_loader import InitFailure
from .registration import HandlerOptions, registered_options
from .serialisers import ResolveError, resolve_callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple

    from .handler_loader import Handler
else:
    from lambda_supervisor.shared.named_tuple import NamedTuple

HTTP = "LAMBDA_SUPERVISOR_HTTP"
TAG_OUTPUT = "LAMBDA_SUPERVISOR_TAG_OUTPUT"
DECODE_BASE64 = "LAMBDA_SUPERVISOR_DECODE_BASE64"
SERIALISER = "LAMBDA_SUPERVISOR_SERIALISER"
DESERIALISER = "LAMBDA_SUPERVISOR_DESERIALISER"

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


class WorkerSetting(NamedTuple):
    variable: str
    default: str
    meaning: str


#: What the README documents (see worker_settings_table).
WORKER_SETTINGS = (
    WorkerSetting(HTTP, "`false`",
                  "Behind API Gateway, a function URL or an ALB, shape what the handler returns into a proxy "
                  "response and answer an exception with a bare 500 (true/false, on/off, 1/0, yes/no; also "
                  "`@lambda_handler(http=True)`). Off: the result goes to Lambda as it is and an exception is an "
                  "invocation error, as with awslambdaric. Authorizer events are never shaped."),
    WorkerSetting(DECODE_BASE64, f"as `{HTTP}`",
                  "Decode base64 request bodies of HTTP events before the handler sees them "
                  "(true/false, on/off, 1/0, yes/no; also `@lambda_handler(decode_base64=True)`)."),
    WorkerSetting(TAG_OUTPUT, "`false`",
                  "Tag each write to stdout/stderr (`print`) with the request id, as a log event in the log format "
                  "(Text: `[INFO]`/`[ERROR]` lines like `logging` records; JSON: records of logger `stdout`/"
                  "`stderr`); a line that is a JSON object stays untouched. Off: raw, as on Lambda."),
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


def read_switch(environ: Mapping[str, str], variable: str) -> bool | None:
    """A true/false variable's value, or None when it is unset (checked before any user code runs)."""
    value = environ.get(variable, "")
    return parse_bool(variable, value) if value.strip() else None


def read_decode_base64(environ: Mapping[str, str]) -> bool | None:
    return read_switch(environ, DECODE_BASE64)


def resolve_options(environ: Mapping[str, str], decode_base64: bool | None, handler: Handler,
                    http: bool | None = None) -> HandlerOptions:
    """The handler's effective options: the environment wins over ``@lambda_handler``. HTTP shaping is off unless
    someone turned it on; base64 decoding follows it unless set on its own. Resolving a serialiser path imports its
    module, so this runs after the handler was loaded (an import error of the handler's own module is then reported
    as such, not as a setting's)."""
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
    shaping = _first_set(http, registered.http, False)
    return HandlerOptions(
        serialiser=resolved.get(SERIALISER) or registered.serialiser,
        deserialiser=resolved.get(DESERIALISER) or registered.deserialiser,
        decode_base64=_first_set(decode_base64, registered.decode_base64, shaping),
        http=shaping,
    )


def _first_set(*choices: bool | None) -> bool:
    return next((choice for choice in choices if choice is not None), False)


def worker_settings_table() -> str:
    """The README's table of these settings, in Markdown (a test checks that the README carries exactly this)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{setting.variable}` | {setting.default} | {setting.meaning} |" for setting in WORKER_SETTINGS]
    return "\n".join(rows)
