"""The one place trio-asyncio is used: asyncio code (asyncpg) under trio.

One asyncio loop is hosted inside the trio run. If the caller is already
inside a ``trio_asyncio.open_loop()`` (e.g. something else in the process
needs asyncio too), that loop is reused rather than nesting a second one.

The bridge remembers its loop and passes it explicitly on every call, so
callers in *any* trio task may use it: trio-asyncio's own "current loop" is a
context variable, visible only to tasks started inside ``open_loop()``, and a
store is typically opened in one task and used from many others.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio_asyncio  # type: ignore[import-untyped]

T = TypeVar("T")


class AsyncioBridge:
    def __init__(self, loop: Any) -> None:
        self._loop = loop

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await the asyncio coroutine function ``fn(*args, **kwargs)`` from trio.

        The coroutine is created inside the asyncio task, so code that looks up
        the running loop when called (asyncpg does) finds ours. Cancelling the
        calling trio scope cancels the asyncio task.
        """
        result: T = await trio_asyncio.aio_as_trio(fn, loop=self._loop)(*args, **kwargs)
        return result


@asynccontextmanager
async def open_asyncio_bridge() -> AsyncIterator[AsyncioBridge]:
    existing = trio_asyncio.current_loop.get()
    if existing is not None:
        yield AsyncioBridge(existing)
        return
    # open_loop runs nurseries, so under trio's strict exception groups
    # whatever leaves the body (a test's AssertionError, our StoreError)
    # would come out wrapped, twice. Those nurseries are an implementation
    # detail: when the group holds nothing but the body's own exception,
    # re-raise that, so a PostgreSQL store raises exactly what SQLite raises.
    from_body: BaseException | None = None
    lone: BaseException | None = None
    try:
        async with trio_asyncio.open_loop() as loop:
            try:
                yield AsyncioBridge(loop)
            except BaseException as exc:
                from_body = exc
                raise
    except BaseExceptionGroup as group:
        if from_body is None or not _wraps_only(group, from_body):
            raise
        lone = from_body
    if lone is not None:
        # Raised outside the except block so the group is not chained on as
        # "during handling of the above exception".
        raise lone


def _wraps_only(group: BaseException, target: BaseException) -> bool:
    """Whether ``group`` is ``target`` inside nothing but one-member groups."""
    exc = group
    while exc is not target and isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc is target
