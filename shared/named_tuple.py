"""``class Point(NamedTuple): x: int; y: int = 0`` at run time without importing ``typing`` (~5 ms and ~0.6 MB
for every worker, before the user's code).

``typing.NamedTuple`` reads the class body's annotations and defaults and hands them to ``collections.namedtuple``;
this reads them the same way and builds the same class: a ``tuple`` subclass with ``__slots__ = ()``, a field
accessor per field, ``_fields``, ``_field_defaults``, ``__match_args__``, ``_make``, ``_replace``, ``_asdict``,
``__getnewargs__`` and namedtuple's ``repr``, and the methods of the class body kept. Modules import
``typing.NamedTuple`` for the type checker and this one at run time::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from lambda_supervisor.shared.named_tuple import NamedTuple

Not ``collections.namedtuple`` itself: it compiles a ``__new__`` for each class with ``eval``, and with the rest of
its work that cost ~65 us a class at a cold start, ~1 ms for the 16 classes both processes define on the way to the
first response (README). Here each class's ``__new__`` is a copy of one compiled with this module for its number of
fields, its parameters renamed to the fields; the other methods are shared by every class (test_named_tuple.py
compares the two kinds of class, behaviour by behaviour).
"""

from __future__ import annotations

from _collections import _tuplegetter  # type: ignore[import-not-found]  # namedtuple's accessor; no stub
from types import FunctionType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

_tuple_new = tuple.__new__

#: ``__new__`` by number of fields: namedtuple's ``lambda _cls, a, b: _tuple_new(_cls, (a, b))``, compiled once here
#: (into the module's .pyc) instead of once per class at run time. A class with more fields is made by namedtuple.
_NEW_BY_FIELD_COUNT = (
    lambda _cls: _tuple_new(_cls, ()),
    lambda _cls, _0: _tuple_new(_cls, (_0,)),
    lambda _cls, _0, _1: _tuple_new(_cls, (_0, _1)),
    lambda _cls, _0, _1, _2: _tuple_new(_cls, (_0, _1, _2)),
    lambda _cls, _0, _1, _2, _3: _tuple_new(_cls, (_0, _1, _2, _3)),
    lambda _cls, _0, _1, _2, _3, _4: _tuple_new(_cls, (_0, _1, _2, _3, _4)),
    lambda _cls, _0, _1, _2, _3, _4, _5: _tuple_new(_cls, (_0, _1, _2, _3, _4, _5)),
    lambda _cls, _0, _1, _2, _3, _4, _5, _6: _tuple_new(_cls, (_0, _1, _2, _3, _4, _5, _6)),
    lambda _cls, _0, _1, _2, _3, _4, _5, _6, _7: _tuple_new(_cls, (_0, _1, _2, _3, _4, _5, _6, _7)),
    lambda _cls, _0, _1, _2, _3, _4, _5, _6, _7, _8: _tuple_new(_cls, (_0, _1, _2, _3, _4, _5, _6, _7, _8)),
    lambda _cls, _0, _1, _2, _3, _4, _5, _6, _7, _8, _9: _tuple_new(_cls, (_0, _1, _2, _3, _4, _5, _6, _7, _8, _9)),
)

#: What the class statement itself puts in the body, never copied onto the tuple class.
_CLASS_STATEMENT_NAMES = frozenset({"__module__", "__qualname__", "__annotations__", "__slots__"})


def _make(cls: Any, iterable: Iterable[Any]) -> Any:
    """Make a new instance from a sequence or iterable."""
    result = _tuple_new(cls, iterable)
    if len(result) != len(cls._fields):
        raise TypeError(f"Expected {len(cls._fields)} arguments, got {len(result)}")
    return result


def _replace(self: Any, /, **changes: Any) -> Any:
    """Return a new instance with the fields named in ``changes`` replaced."""
    result = self._make(map(changes.pop, self._fields, self))
    if changes:
        raise ValueError(f"Got unexpected field names: {list(changes)!r}")
    return result


def _repr(self: Any) -> str:
    """``Name(field=value, ...)``, as namedtuple writes it."""
    fields = ", ".join(f"{field}={value!r}" for field, value in zip(self._fields, self, strict=True))
    return f"{type(self).__name__}({fields})"


def _asdict(self: Any) -> dict[str, Any]:
    """A new dict which maps field names to their values."""
    return dict(zip(self._fields, self, strict=True))


def _getnewargs(self: Any) -> tuple[Any, ...]:
    """Self as a plain tuple: used by copy and pickle."""
    return tuple(self)


def _tuple_class(name: str, fields: tuple[str, ...], defaults: list[object], module: str) -> type:
    """What ``collections.namedtuple(name, fields, defaults=defaults, module=module)`` returns."""
    if len(fields) >= len(_NEW_BY_FIELD_COUNT) or any(field.startswith("_") for field in fields):
        from collections import namedtuple  # also for its error on a name of its own (``_fields``, ``_cls``)

        make: Callable[..., type] = namedtuple  # by name: mypy reads ``namedtuple(...)`` as a class of its own
        return make(name, fields, defaults=defaults, module=module)
    new = FunctionType(_NEW_BY_FIELD_COUNT[len(fields)].__code__.replace(
        co_varnames=("_cls", *fields), co_name="__new__", co_qualname=f"{name}.__new__"), globals(), "__new__",
        tuple(defaults))
    arguments = ", ".join(fields) + ("," if len(fields) == 1 else "")  # as namedtuple writes them
    new.__doc__ = f"Create new instance of {name}({arguments})"
    namespace: dict[str, object] = {
        "__doc__": f"{name}({arguments})", "__slots__": (), "__module__": module, "_fields": fields,
        "_field_defaults": dict(zip(fields[len(fields) - len(defaults):], defaults, strict=True)), "__new__": new,
        "_make": classmethod(_make), "_replace": _replace, "__repr__": _repr, "_asdict": _asdict,
        "__getnewargs__": _getnewargs, "__match_args__": fields,
    }
    for index, field in enumerate(fields):
        namespace[field] = _tuplegetter(index, f"Alias for field number {index}")
    return type(name, (tuple,), namespace)


class _NamedTupleMeta(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], body: dict[str, object]) -> type:
        if not bases:  # NamedTuple itself
            return super().__new__(mcs, name, bases, body)
        if "__classcell__" in body:  # the cell would stay empty: the tuple class is not made from this body
            raise TypeError(f"{name}: a NamedTuple's methods cannot use super() or __class__")
        annotations = body.get("__annotations__", {})
        fields = tuple(annotations) if isinstance(annotations, dict) else ()
        defaults = [body[field] for field in fields if field in body]
        tuple_class = _tuple_class(name, fields, defaults, str(body["__module__"]))
        for key, value in body.items():
            if key not in _CLASS_STATEMENT_NAMES and key not in fields:
                setattr(tuple_class, key, value)
        tuple_class.__qualname__ = str(body["__qualname__"])
        return tuple_class


class NamedTuple(metaclass=_NamedTupleMeta):
    """The base to derive from (the derived class is a plain ``tuple`` subclass, not a subclass of this)."""
