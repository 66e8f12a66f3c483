"""Telling an ``async def`` handler apart without importing inspect (worker/async_runner.py): the same answers as
inspect.iscoroutinefunction, through methods and functools.partial."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

from lambda_supervisor.worker.async_runner import is_async_handler


async def coroutine_handler(event: Any, context: Any) -> Any:
    return event


def plain_handler(event: Any, context: Any) -> Any:
    return event


def generator_handler(event: Any, context: Any) -> Any:
    yield event


class Handlers:
    async def method(self, event: Any, context: Any) -> Any:
        return event

    def __call__(self, event: Any, context: Any) -> Any:
        return event


CASES = [coroutine_handler, plain_handler, generator_handler, Handlers().method, Handlers(), print,
         functools.partial(coroutine_handler), functools.partial(functools.partial(plain_handler)),
         functools.partial(Handlers().method), lambda event, context: event]


@pytest.mark.parametrize("handler", CASES)
def test_same_answer_as_inspect(handler: Any) -> None:
    assert is_async_handler(handler) == inspect.iscoroutinefunction(handler)


def test_async_ones_are_seen() -> None:
    assert is_async_handler(coroutine_handler) and is_async_handler(functools.partial(Handlers().method))
