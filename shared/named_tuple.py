"""``class Point(NamedTuple): x: int; y: int = 0`` at run time without importing ``typing`` (~5 ms and ~0.6 MB
for every worker, before the user's code).

``typing.NamedTuple`` itself reads the class body's annotations and defaults and hands them to
``collections.namedtuple``; this does the same, so the classes are the same ``collections.namedtuple`` classes
(equality, unpacking, ``_replace``, ``_asdict``, defaults) and the methods of the class body are kept. Modules
import ``typing.NamedTuple`` for the type checker and this one at run time::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from lambda_supervisor.shared.named_tuple import NamedTuple
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

#: Called by name, not as ``namedtuple(...)``, which mypy reads as a class definition of its own.
_make_tuple_class: Callable[..., type] = namedtuple

#: What the class statement itself puts in the body, never copied onto the tuple class.
_CLASS_STATEMENT_NAMES = frozenset({"__module__", "__qualname__", "__annotations__", "__slots__"})


class _NamedTupleMeta(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], body: dict[str, object]) -> type:
        if not bases:  # NamedTuple itself
            return super().__new__(mcs, name, bases, body)
        if "__classcell__" in body:  # the cell would stay empty: the tuple class is not made from this body
            raise TypeError(f"{name}: a NamedTuple's methods cannot use super() or __class__")
        annotations = body.get("__annotations__", {})
        fields = tuple(annotations) if isinstance(annotations, dict) else ()
        defaults = [body[field] for field in fields if field in body]
        tuple_class = _make_tuple_class(name, fields, defaults=defaults, module=str(body["__module__"]))
        for key, value in body.items():
            if key not in _CLASS_STATEMENT_NAMES and key not in fields:
                setattr(tuple_class, key, value)
        tuple_class.__qualname__ = str(body["__qualname__"])
        return tuple_class


class NamedTuple(metaclass=_NamedTupleMeta):
    """The base to derive from (the derived class is a ``collections.namedtuple`` class, not a subclass of this)."""
