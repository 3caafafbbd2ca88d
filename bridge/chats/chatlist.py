"""The chat list's rules that REST and the socket share: how settings look on
the wire, and clearing "marked unread" when a chat is read (issue 18).

Pushes go through ``push`` (``push_to_user(user_id, encoded_frame)``), which
reaches every online device of the user on this node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from protocol import codec
from protocol.frames_chatlist import ChatSettingsChanged, ChatSettingsData, NotifyLevel
from storage.base import Store
from storage.chatlist import MUTE_FOREVER, ChatSettings, chatlist_store

Push = Callable[[str, bytes], None]

HOUR_MS = 3600 * 1000
MUTE_DURATIONS: dict[str, int | None] = {
    "8h": 8 * HOUR_MS,
    "1w": 7 * 24 * HOUR_MS,
    "always": MUTE_FOREVER,
    "off": None,
}


def settings_data(s: ChatSettings, now: int) -> ChatSettingsData:
    muted = s.muted(now)
    return ChatSettingsData(
        room=s.room_id,
        muted=muted,
        muted_until=s.muted_until if muted and s.muted_until != MUTE_FOREVER else None,
        mute_forever=muted and s.muted_until == MUTE_FOREVER,
        pinned=s.pinned_at is not None,
        pinned_at=s.pinned_at,
        archived=s.archived(now),
        marked_unread=s.marked_unread,
        notify=cast(NotifyLevel, s.notify),
        updated_at=s.updated_at,
    )


def push_settings(push: Push | None, user_id: str, s: ChatSettings, now: int) -> None:
    if push is not None:
        push(user_id, codec.encode(ChatSettingsChanged(d=settings_data(s, now))))


async def clear_marked_unread(
    store: Store, push: Push | None, user_id: str, room_id: str, now: int
) -> None:
    """Reading a chat clears its marked-unread flag; the user's devices hear it."""
    cleared = await chatlist_store(store).clear_unread(user_id, room_id, now)
    if cleared is not None:
        push_settings(push, user_id, cleared, now)


def notification_level(s: ChatSettings, now: int) -> NotifyLevel:
    """What the push work may send for a new message in this chat now:
    nothing while muted (unread still counts), else the chat's choice."""
    return "none" if s.muted(now) else cast(NotifyLevel, s.notify)
