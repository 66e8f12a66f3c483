"""A base for the supervisor's immutable value classes: what a frozen dataclass gave them, without importing
``dataclasses`` (which pulls in inspect, ast and dis: the largest part of the supervisor's memory at rest).

A subclass lists its fields in ``__slots__``, annotates them, and sets them once in ``__init__`` with
:meth:`Frozen._set`. Equality, hash and repr are over the fields in that order; :meth:`Frozen.replace` is
``dataclasses.replace``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's

if TYPE_CHECKING:
    from typing import Any, NoReturn, Self


class FrozenError(AttributeError):
    """An attribute of a frozen value was assigned or deleted."""


class Frozen:
    __slots__: tuple[str, ...] = ()

    def _set(self, **values: Any) -> None:
        """Set the fields (only from ``__init__``: afterwards the value never changes)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied; an unknown field is a TypeError."""
        unknown = set(changes) - set(self.__slots__)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(sorted(unknown))}")
        copy = object.__new__(type(self))
        copy._set(**{name: changes.get(name, getattr(self, name)) for name in self.__slots__})
        return copy

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise FrozenError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")

    def __delattr__(self, name: str) -> NoReturn:
        raise FrozenError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frozen) or type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"
