"""How events come in and results go out: the default JSON codec, ``identity``, and resolving dotted paths.

By default the worker parses the event as JSON and encodes the result exactly as awslambdaric does (its simplejson
settings, see result_json.py: ``Decimal`` exact, ``bytes`` posted raw as ``application/unknown``, non-ASCII escaped
but on the managed Python 3.12+ runtimes, namedtuples as objects). A
function may choose its own codec instead (``LAMBDA_SUPERVISOR_DESERIALISER`` / ``LAMBDA_SUPERVISOR_SERIALISER``,
or :func:`~lambda_supervisor.worker.registration.lambda_handler`): a deserialiser takes the event body as text and
returns what the handler receives; a serialiser takes what the handler returned and gives ``str`` or ``bytes``,
posted as the response unchanged. :func:`identity` as both means "raw string in, raw string out".
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping

from lambda_supervisor.shared.protocol import BYTES_CONTENT_TYPE, JSON_CONTENT_TYPE

from .result_json import ResultEncoder

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Serialiser = Callable[[Any], Any]  # returns str or bytes (checked per invocation: user code may not keep promises)
    Deserialiser = Callable[[str], Any]
#: The short name accepted in the environment variables for :func:`identity`.
IDENTITY_NAME = "identity"


def identity(value: Any) -> Any:
    """Pass the value through: as a deserialiser the handler gets the raw event text, as a serialiser the handler
    returns the exact ``str``/``bytes`` to post."""
    return value


#: The managed runtimes on which awslambdaric writes non-ASCII characters as they are (3.12 and later).
_UNESCAPED_RUNTIME = re.compile(r"AWS_Lambda_python3\.(\d+)")


def escapes_non_ascii(environ: Mapping[str, str]) -> bool:
    """Whether results escape non-ASCII characters (``\\u00e9``): awslambdaric does, except on the managed
    Python runtimes from 3.12 on, where it writes them as UTF-8."""
    match = _UNESCAPED_RUNTIME.fullmatch(environ.get("AWS_EXECUTION_ENV", ""))
    return match is None or int(match[1]) < 12


def init_off_the_request_path(environ: Mapping[str, str]) -> bool:
    """Whether this environment was initialised ahead of its requests (provisioned concurrency, SnapStart,
    Managed Instances), rather than on demand for the request that waits for it (or locally: unset)."""
    return environ.get("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand") != "on-demand"


#: Made once, from the environment the worker started with.
_ENCODER = ResultEncoder(ensure_ascii=escapes_non_ascii(os.environ))
if init_off_the_request_path(os.environ):
    _ENCODER.load()  # as awslambdaric does: at init, which no request waits for


def load_encoder() -> None:
    """Load simplejson now (the fork template: every worker forked from it has it then)."""
    _ENCODER.load()


def to_json(value: Any) -> str:
    """The default serialisation of results and of HTTP bodies built from dicts."""
    return _ENCODER.encode(value)


def marshal_result(value: Any) -> tuple[bytes, str]:
    """A result as awslambdaric posts it: ``bytes`` (and ``bytearray``) raw as ``application/unknown``, anything
    else JSON. Raises what the encoder raises (TypeError, ValueError, RecursionError) for what it cannot encode."""
    if isinstance(value, bytes | bytearray):
        return bytes(value), BYTES_CONTENT_TYPE
    return to_json(value).encode("utf-8"), JSON_CONTENT_TYPE


class ResolveError(Exception):
    """A dotted path that does not name a callable; the message says why."""


def resolve_callable(path: str) -> Callable[..., Any]:
    """``"package.module.function"`` or ``"package.module:function"`` (or ``"identity"``) -> the callable.

    Importing the module runs its code, so this is done once, at init, after the task root is on ``sys.path``.
    """
    path = path.strip()
    if path == IDENTITY_NAME:
        return identity
    module_name, separator, attribute = path.rpartition(":")
    if not separator:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not all(part.isidentifier() for part in [*module_name.split("."), attribute]):
        raise ResolveError(f"{path!r} is not a dotted path such as 'package.module.function' or 'identity'")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or whatever the module's own code raised
        raise ResolveError(f"cannot import module {module_name!r}: {type(error).__name__}: {error}") from None
    value = getattr(module, attribute, None)
    if value is None:
        raise ResolveError(f"module {module_name!r} has no attribute {attribute!r}")
    if not callable(value):
        raise ResolveError(f"{path!r} is a {type(value).__name__}, not a callable")
    return value  # type: ignore[no-any-return]
