"""shared/named_tuple.py: ``class X(NamedTuple)`` without typing gives what typing.NamedTuple gives."""

from __future__ import annotations

import collections
import typing

import pytest

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
