"""Run ``async def`` handlers on one event loop that stays warm between invocations.

``asyncio.run`` per call would close the loop each time, breaking what users cache at module level across calls
(clients with connection pools, locks, queues, background tasks): those are bound to the loop they first ran on.
So the worker makes one loop, sets it as the current loop, and runs each call with ``run_until_complete``.
asyncio itself is imported only then: it is the worker's largest import, and most handlers are not async.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from types import CodeType, MethodType

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any, TypeVar

    T = TypeVar("T")
#: The code flag of an ``async def`` function (inspect.CO_COROUTINE).
CO_COROUTINE = 0x80


def is_async_handler(handler: Callable[..., Any]) -> bool:
    """True for ``async def`` handlers (also through ``functools.partial``). Anything else that returns a coroutine
    (a sync wrapper, a callable object) is still run on the loop: the worker checks the result too."""
    function: object = handler
    while isinstance(function, MethodType | functools.partial):
        function = function.__func__ if isinstance(function, MethodType) else function.func
    code = getattr(function, "__code__", None)  # what inspect.iscoroutinefunction looks at, without importing it
    return isinstance(code, CodeType) and bool(code.co_flags & CO_COROUTINE)


class AsyncRunner:
    """The worker's one event loop, created on first need (at init for an ``async def`` handler)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            import asyncio

            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop

    def after_fork(self) -> None:
        """In a worker forked from the template: an inherited loop shares its epoll instance and self-pipe with
        the template and every sibling, so close this process's copy and start a loop of its own."""
        inherited, self._loop = self._loop, None
        if inherited is not None:
            inherited.close()
            self.loop  # noqa: B018 - created now, not during the first (billed) call

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run an awaitable to completion on the warm loop; what it left scheduled survives until the next call."""
        return self.loop.run_until_complete(awaitable)
