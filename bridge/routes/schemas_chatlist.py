"""Request and response bodies of the chat-list routes (issue 18)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from bridge.routes.schemas import MessageOut, RoomListQuery, RoomSummaryOut
from protocol.frames_chatlist import ChatSettingsData

MuteChoice = Literal["8h", "1w", "always", "off"]


class ChatListQuery(RoomListQuery, frozen=True):
    archived: Annotated[
        bool, msgspec.Meta(description="true: the archived chats; false (default): the main list.")
    ] = False


class ChatSummaryOut(RoomSummaryOut, kw_only=True):
    settings: ChatSettingsData


class ChatList(msgspec.Struct):
    rooms: list[ChatSummaryOut]


class SettingsPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Fields left out stay as they are."""

    mute: Annotated[
        str | None,
        msgspec.Meta(description='"8h", "1w", "always" or "off" (unmute).'),
    ] = None
    mute_until: Annotated[
        int | None, msgspec.Meta(description="Mute until this time (ms since the epoch).")
    ] = None
    pinned: bool | None = None
    archived: bool | None = None
    marked_unread: bool | None = None
    notify: Literal["all", "mentions", "none"] | None = None


class StarOut(msgspec.Struct):
    room: str
    seq: int
    starred: bool
    starred_at: int | None = None


class StarredOut(msgspec.Struct):
    starred_at: int
    message: MessageOut


class StarredQuery(msgspec.Struct, frozen=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50
    cursor: (
        Annotated[
            str, msgspec.Meta(description="next_cursor of the previous page.", max_length=200)
        ]
        | None
    ) = None


class StarredPage(msgspec.Struct):
    starred: list[StarredOut]  # newest star first
    next_cursor: Annotated[
        str | None, msgspec.Meta(description="Pass as cursor for the next page; null at the end.")
    ]
