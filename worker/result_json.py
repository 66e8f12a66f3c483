"""Results as JSON, written byte for byte as awslambdaric writes them, without loading simplejson for plain data.

awslambdaric encodes with simplejson (a ``Decimal`` exact, namedtuples as objects). simplejson and the ``decimal``
module it loads cost ~2.3 ms of CPU before the first response of every cold start (README, "Cold start"). For plain
data (exact dicts with ``str`` keys, lists, tuples, ``str``, ``int``, ``float``, ``bool``, ``None``, of bounded
size and depth) the standard library's ``json``, loaded before the fork and shared with the supervisor, writes the
same text; tests/unit/test_result_json.py checks that against awslambdaric's own encoder. Anything else, or more,
goes to simplejson, loaded on that first need (or ahead of it with :meth:`ResultEncoder.load`) and used from then
on.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: Past this many containers' members, or this deep, a result is not worth checking: simplejson encodes it. The
#: check costs ~0.1 us a member, and json encodes containers faster than simplejson by about as much.
MAX_PLAIN_MEMBERS = 1000
MAX_PLAIN_DEPTH = 64
#: Past this many characters of string values, simplejson encodes it: it escapes long strings to ASCII ~15 % faster.
MAX_PLAIN_CHARS = 4096

_OTHER_SCALARS = frozenset({int, float, bool, type(None)})


def is_plain(value: Any) -> bool:
    """Whether ``value`` is plain data, small enough to check: every container an exact dict (``str`` keys), list
    or tuple, every other value of an exact scalar type. Subclasses (a namedtuple, an IntEnum) are not plain."""
    members, chars = MAX_PLAIN_MEMBERS, MAX_PLAIN_CHARS
    level: list[Any] = [value]
    for _ in range(MAX_PLAIN_DEPTH):
        below: list[Any] = []
        for item in level:
            kind = type(item)
            if kind is str:
                chars -= len(item)
            elif kind is dict:
                if any(type(key) is not str for key in item):
                    return False
                below.extend(item.values())
            elif kind is list or kind is tuple:
                below.extend(item)
            elif kind not in _OTHER_SCALARS:
                return False
        members -= len(below)
        if members < 0 or chars < 0:
            return False
        if not below:
            return True
        level = below
    return False


class ResultEncoder:
    """``encode(value) -> str``, as awslambdaric's marshaller would, with ``ensure_ascii`` as it sets it."""

    def __init__(self, ensure_ascii: bool) -> None:
        self._ensure_ascii = ensure_ascii
        self._plain = _plain_encoder(ensure_ascii)
        self._full: Callable[[Any], str] | None = None  # simplejson's, once a result needed it

    def load(self) -> None:
        """Load simplejson, once: at the first result that needs it, or ahead of it where init is not on a request's
        path (serialisers.py, the fork template), so that no invocation pays for it."""
        if self._full is None:
            self._full = _simplejson_encoder(self._ensure_ascii)

    def encode(self, value: Any) -> str:
        if self._full is None:
            if is_plain(value):
                return self._plain(value)
            self.load()
        assert self._full is not None
        return self._full(value)


def _plain_encoder(ensure_ascii: bool) -> Callable[[Any], str]:
    """``json.JSONEncoder(ensure_ascii=..., allow_nan=True).encode``, for plain values only: the C encoder it makes
    on every call is made once here (half its cost per result, README), without the circular-reference check,
    which a plain value needs none of (``is_plain`` only passes finite trees)."""
    encoder = json.JSONEncoder(ensure_ascii=ensure_ascii, allow_nan=True)
    try:
        from _json import make_encoder
    except ImportError:  # an interpreter without json's C half
        return encoder.encode
    strings = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    encode = make_encoder(None, encoder.default, strings, None, ": ", ", ", False, False, True)
    return lambda value: "".join(encode(value, 0))


def _simplejson_encoder(ensure_ascii: bool) -> Callable[[Any], str]:
    """simplejson, configured as awslambdaric's marshaller: a ``Decimal`` is written as its exact digits
    (``Decimal("1.10")`` stays ``1.10``), a NaN ``Decimal`` as ``NaN``; namedtuples become objects."""
    from decimal import Decimal

    import simplejson

    nan = float("nan")  # math.nan, without importing math

    class _Encoder(simplejson.JSONEncoder):
        def default(self, o: Any) -> Any:
            if isinstance(o, Decimal):
                return nan if o.is_nan() else simplejson.RawJSON(str(o))
            return super().default(o)

    return _Encoder(use_decimal=False, ensure_ascii=ensure_ascii, allow_nan=True).encode
