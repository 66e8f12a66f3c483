"""How events come in and results go out: the default JSON codec, ``identity``, and resolving dotted paths.

By default the worker parses the event as JSON and encodes the result as JSON, as Lambda's own runtime does. A
function may choose its own codec instead (``LAMBDA_SUPERVISOR_DESERIALISER`` / ``LAMBDA_SUPERVISOR_SERIALISER``,
or :func:`~lambda_supervisor.worker.registration.lambda_handler`): a deserialiser takes the event body as text and
returns what the handler receives; a serialiser takes what the handler returned and gives ``str`` or ``bytes``,
posted as the response unchanged. :func:`identity` as both means "raw string in, raw string out".
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

Serialiser = Callable[[Any], Any]  # returns str or bytes (checked per invocation: user code may not keep promises)
Deserialiser = Callable[[str], Any]
#: The short name accepted in the environment variables for :func:`identity`.
IDENTITY_NAME = "identity"


def identity(value: Any) -> Any:
    """Pass the value through: as a deserialiser the handler gets the raw event text, as a serialiser the handler
    returns the exact ``str``/``bytes`` to post."""
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):  # what DynamoDB's deserialiser hands out; Lambda's runtime encodes it as a number
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


#: Made once: ``json.dumps`` with ``default=`` would build a new encoder for every result.
_ENCODER = json.JSONEncoder(default=_json_default, ensure_ascii=False)


def to_json(value: Any) -> str:
    """The default serialisation of results and of HTTP bodies built from dicts."""
    return _ENCODER.encode(value)


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
