"""``@lambda_handler``: options a handler carries with it, for what cannot be said in ``handler(event, context)``.

    from lambda_supervisor.worker.registration import lambda_handler
    from lambda_supervisor.worker.serialisers import identity

    @lambda_handler(deserialiser=identity, serialiser=identity)
    def handler(body: str, context) -> str: ...

    @lambda_handler(http=True)  # behind HTTP: results shaped into proxy responses, exceptions a bare 500
    def get_order(event, context): ...

The decorator only attaches a :class:`HandlerOptions` to the function (which stays callable as before, also in unit
tests); the worker's loader reads it. Environment variables, when set, win over these: they are the deployment's
configuration, as everywhere else in this runtime.
"""

from __future__ import annotations

from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple, TypeVar, overload

    from .serialisers import Deserialiser, Serialiser

    F = TypeVar("F", bound=Callable[..., Any])
else:
    from lambda_supervisor.shared.named_tuple import NamedTuple

OPTIONS_ATTRIBUTE = "__lambda_supervisor_options__"


class HandlerOptions(NamedTuple):
    """``None`` means "not chosen here": the environment, then the runtime's default, decides."""

    serialiser: Serialiser | None = None
    deserialiser: Deserialiser | None = None
    decode_base64: bool | None = None
    #: Behind HTTP sources: shape results into proxy responses and answer exceptions with a bare 500.
    http: bool | None = None


if TYPE_CHECKING:  # typing.overload is for the type checker only
    @overload
    def lambda_handler(function: F, /) -> F: ...


    @overload
    def lambda_handler(
        *,
        serialiser: Serialiser | None = None,
        deserialiser: Deserialiser | None = None,
        decode_base64: bool | None = None,
        http: bool | None = None,
    ) -> Callable[[F], F]: ...


def lambda_handler(
    function: F | None = None,
    /,
    *,
    serialiser: Serialiser | None = None,
    deserialiser: Deserialiser | None = None,
    decode_base64: bool | None = None,
    http: bool | None = None,
) -> F | Callable[[F], F]:
    """Register a handler's options; usable bare (``@lambda_handler``) or with arguments."""
    options = HandlerOptions(serialiser=serialiser, deserialiser=deserialiser, decode_base64=decode_base64,
                             http=http)
    for name, value in (("serialiser", serialiser), ("deserialiser", deserialiser)):
        if value is not None and not callable(value):
            raise TypeError(f"lambda_handler({name}=...) needs a callable, got {type(value).__name__}")

    def register(target: F) -> F:
        setattr(target, OPTIONS_ATTRIBUTE, options)
        return target

    return register(function) if function is not None else register


def registered_options(handler: Callable[..., Any]) -> HandlerOptions:
    """The options ``@lambda_handler`` attached to ``handler``, or the empty ones."""
    options = getattr(handler, OPTIONS_ATTRIBUTE, None)
    return options if isinstance(options, HandlerOptions) else HandlerOptions()
