"""Documented examples of the chat-list frames (``protocol.frames_chatlist``).

Merged into ``protocol.schema.EXAMPLES``.
"""

from __future__ import annotations

import msgspec

from protocol.frames_chatlist import ChatSettingsChanged, ChatSettingsData, MsgStarred, StarredData

_TS = 1_700_000_000_000

CHATLIST_EXAMPLES: dict[str, msgspec.Struct] = {
    "chat.settings": ChatSettingsChanged(
        d=ChatSettingsData(
            room="r_general",
            muted=True,
            muted_until=_TS + 8 * 3600 * 1000,
            pinned=True,
            pinned_at=_TS,
            notify="mentions",
            updated_at=_TS,
        )
    ),
    "msg.starred": MsgStarred(d=StarredData(room="r_general", seq=42, on=True, at=_TS)),
}
