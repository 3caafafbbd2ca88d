"""Examples of the typing and presence frames, merged into ``protocol.schema.EXAMPLES``."""

from __future__ import annotations

import msgspec

from protocol.frames_presence import (
    Presence,
    PresenceGet,
    PresenceGetData,
    PresenceList,
    PresenceListData,
    PresenceState,
    Typing,
    TypingData,
    TypingEventData,
    TypingStart,
    TypingStop,
)

_TS = 1_700_000_000_000

PRESENCE_EXAMPLES: dict[str, msgspec.Struct] = {
    "typing.start": TypingStart(id=30, d=TypingData(room="r_general")),
    "typing.stop": TypingStop(id=31, d=TypingData(room="r_general")),
    "presence.get": PresenceGet(id=32, d=PresenceGetData(users=["u_456", "u_789"])),
    "typing": Typing(d=TypingEventData(room="r_general", user="u_456", on=True)),
    "presence": Presence(d=PresenceState(user="u_456", online=False, last_seen=_TS - 60_000)),
    "presence.list": PresenceList(
        re=32,
        d=PresenceListData(
            users=[
                PresenceState(user="u_456", online=True),
                PresenceState(user="u_789", online=False, last_seen=_TS - 3_600_000),
            ]
        ),
    ),
}
