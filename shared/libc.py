"""The two C library calls the runtime makes, ``prctl`` and ``setvbuf``, through ``_ctypes`` (the C half of
``ctypes``) without importing ``ctypes`` itself: its Python half, with ``struct``, costs every worker about 2 ms and
0.25 MB before the user's code, for three calls.

Each call is declared as ``ctypes.CDLL(None, use_errno=True)`` would declare it: C calling convention, ``int``
result, integers passed as C ``int``. Linux only; elsewhere :func:`call` raises OSError.
"""

from __future__ import annotations

from _ctypes import FUNCFLAG_CDECL, FUNCFLAG_USE_ERRNO, CFuncPtr, _SimpleCData, byref, dlopen

__all__ = ["CInt", "CPointer", "byref", "c_variable", "call"]


class CInt(_SimpleCData):  # type: ignore[type-arg]
    """``ctypes.c_int``."""

    _type_ = "i"


class CPointer(_SimpleCData):  # type: ignore[type-arg]
    """``ctypes.c_void_p``."""

    _type_ = "P"


class _IntFunction(CFuncPtr):
    _flags_ = FUNCFLAG_CDECL | FUNCFLAG_USE_ERRNO
    _restype_ = CInt


class _Process:
    """The symbols of the process itself (``dlopen(NULL)``), as ``ctypes.CDLL(None)``: ``_ctypes`` asks for
    ``_handle``."""

    def __init__(self) -> None:
        self._handle = dlopen(None, 0)  # type: ignore[arg-type]


def call(name: str, *arguments: object) -> int:
    """Call the C function ``name`` of the process's libraries; raises OSError where it cannot be found."""
    try:
        function = _IntFunction((name, _Process()))  # type: ignore[arg-type]
    except AttributeError as error:  # dlsym found no such function
        raise OSError(str(error)) from None
    return int(function(*arguments))


def c_variable(kind: type[CPointer], name: str) -> CPointer:
    """A global C variable of the process's libraries (``kind.in_dll``); raises OSError/ValueError if absent."""
    return kind.in_dll(_Process(), name)  # type: ignore[arg-type]
