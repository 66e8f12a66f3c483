"""shared/named_tuple.py: ``class X(NamedTuple)`` without typing gives what typing.NamedTuple gives, and its
classes behave as ``collections.namedtuple``'s."""

from __future__ import annotations

import collections
import copy
import pickle
import typing
from collections.abc import Callable

import pytest

from lambda_supervisor.shared import named_tuple
from lambda_supervisor.shared.named_tuple import NamedTuple


class Ours(NamedTuple):
    """A doc."""

    name: str
    size: int = 0
    tags: tuple[str, ...] = ()

    @property
    def big(self) -> bool:
        return self.size > 10

    @classmethod
    def parse(cls, text: str) -> Ours:
        return cls(text, len(text))

    def described(self) -> str:
        return f"{self.name}:{self.size}"


class Theirs(typing.NamedTuple):
    name: str
    size: int = 0
    tags: tuple[str, ...] = ()


def test_fields_defaults_and_tuple_behaviour_are_typing_namedtuples() -> None:
    assert Ours._fields == Theirs._fields
    assert Ours._field_defaults == Theirs._field_defaults
    value = Ours("a", 3)
    assert value == ("a", 3, ()) == Theirs("a", 3)
    name, size, tags = value
    assert (name, size, tags) == ("a", 3, ())
    assert value._replace(size=20).big and not value.big
    assert value._asdict() == {"name": "a", "size": 3, "tags": ()}
    assert hash(value) == hash(("a", 3, ()))
    assert repr(value) == "Ours(name='a', size=3, tags=())"
    with pytest.raises(AttributeError):
        value.size = 4  # type: ignore[misc]


def test_the_class_body_is_kept() -> None:
    assert Ours.parse("abc") == Ours("abc", 3)
    assert Ours("x", 1).described() == "x:1"
    assert Ours.__doc__ == "A doc."
    assert Ours.__module__ == __name__ and Ours.__qualname__ == "Ours"
    assert issubclass(Ours, tuple) and Ours.__slots__ == ()
    assert Ours.__bases__ == (tuple,) and type(Ours) is type(collections.namedtuple("P", "x"))


def test_super_in_a_method_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match="super"):
        class Broken(NamedTuple):
            x: int

            def method(self) -> str:
                return str(super().__repr__())


def _outcome(action: Callable[..., object], *arguments: object, **keywords: object) -> object:
    """What ``action(*arguments, **keywords)`` returns, or its exception's type and message."""
    try:
        return action(*arguments, **keywords)
    except Exception as error:
        return type(error), str(error)


#: Up to the most fields a class gets our own ``__new__`` for, and one more (made by namedtuple itself).
SHAPES = [(count, defaults) for count in (0, 1, 2, 3, 5, 9, 10, 11) for defaults in (0, 1, count) if defaults <= count]


@pytest.mark.parametrize(("count", "default_count"), SHAPES)
def test_a_class_behaves_as_namedtuples_class_does(count: int, default_count: int) -> None:
    name = f"Shape{count}x{default_count}"
    fields = tuple(f"f{index}" for index in range(count))
    defaults: list[object] = [f"default{index}" for index in range(default_count)]
    ours = named_tuple._tuple_class(name, fields, defaults, __name__)
    theirs = collections.namedtuple(name, fields, defaults=defaults, module=__name__)  # type: ignore[misc]
    globals()[name] = ours  # where pickle looks it up
    for attribute in ("_fields", "_field_defaults", "__match_args__", "__doc__", "__slots__", "__bases__",
                      "__module__", "__qualname__"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert type(ours) is type(theirs)
    assert ours.__new__.__doc__ == theirs.__new__.__doc__
    assert ours.__new__.__defaults__ == theirs.__new__.__defaults__
    values = [f"value{index}" for index in range(count)]
    calls: list[tuple[tuple[object, ...], dict[str, object]]] = [
        (tuple(values), {}), ((), dict(zip(fields, values, strict=True))), (tuple(values[:count - default_count]), {}),
        (tuple(values[:-1]), {}), ((*values, "extra"), {}), (tuple(values), {"f0": "twice"}),
        (tuple(values), {"nope": 1})]
    for arguments, keywords in calls:
        assert _outcome(ours, *arguments, **keywords) == _outcome(theirs, *arguments, **keywords)
    mine, reference = ours(*values), theirs(*values)
    assert mine == reference == tuple(values) and hash(mine) == hash(reference)
    assert repr(mine) == repr(reference)
    assert mine._asdict() == reference._asdict()
    for changes in ({}, {"f0": "new"}, {"nope": 1}):
        assert _outcome(mine._replace, **changes) == _outcome(reference._replace, **changes)
    for iterable in (values, values[:-1], [*values, "extra"]):
        assert _outcome(ours._make, iterable) == _outcome(theirs._make, iterable)
    for field in fields:
        assert getattr(mine, field) == getattr(reference, field)
        assert _outcome(setattr, mine, field, 1) == _outcome(setattr, reference, field, 1)
    assert _outcome(setattr, mine, "other", 1)[0] is _outcome(setattr, reference, "other", 1)[0]  # type: ignore[index]
    for copied in (pickle.loads(pickle.dumps(mine)), copy.copy(mine), copy.deepcopy(mine)):
        assert copied == mine and type(copied) is ours


def test_a_field_named_like_namedtuples_own_attributes_is_refused_as_namedtuple_refuses_it() -> None:
    fields = ("name", "_cls")
    assert _outcome(named_tuple._tuple_class, "Clash", fields, [], __name__) == _outcome(
        collections.namedtuple, "Clash", fields)
