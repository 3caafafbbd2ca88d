"""Helpers for the media, groups, typing and presence tests: pushes by type."""

from __future__ import annotations

from typing import TypeVar

import trio

from protocol.client import Client
from protocol.frames import MsgNew

F = TypeVar("F")


async def next_of(client: Client, kind: type[F], timeout: float = 5.0) -> F:  # noqa: ASYNC109
    """The next push of type ``kind``, skipping others (resume.done, presence...)."""
    with trio.fail_after(timeout):
        while True:
            frame = await client.next_push()
            if isinstance(frame, kind):
                return frame


async def assert_no_push_of(client: Client, kind: type, wait: float) -> None:
    """Nothing of type ``kind`` arrives within ``wait`` seconds."""
    with trio.move_on_after(wait):
        while True:
            frame = await client.next_push()
            assert not isinstance(frame, kind), f"unexpected {frame!r}"


async def system_events(client: Client, count: int, timeout: float = 5.0) -> list[str]:  # noqa: ASYNC109
    """The texts of the next ``count`` system messages pushed to ``client``."""
    texts = []
    while len(texts) < count:
        frame = await next_of(client, MsgNew, timeout)
        if frame.d.kind == "system":
            texts.append(frame.d.text)
    return texts
