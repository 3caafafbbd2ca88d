"""Documented examples of the rich-messaging frames (``protocol.frames_chat``).

Merged into ``protocol.schema.EXAMPLES``; kept apart so each feature's
examples sit next to each other and the shared module stays short.
"""

from __future__ import annotations

import msgspec

from protocol.frames_chat import (
    Contact,
    Delete,
    DeleteData,
    DeletedData,
    Disappear,
    DisappearData,
    DisappearingData,
    Edit,
    EditData,
    EditedData,
    Forward,
    ForwardData,
    Location,
    MsgDeleted,
    MsgEdited,
    MsgPinned,
    MsgReaction,
    Pin,
    PinData,
    PinnedData,
    React,
    ReactData,
    ReactionData,
    ReceiptData,
    ReceiptSet,
    ReceiptUpdate,
    ReceiptUpdateData,
    RoomDisappearing,
)

_TS = 1_700_000_000_000

CHAT_EXAMPLES: dict[str, msgspec.Struct] = {
    "msg.edit": Edit(id=4, d=EditData(room="r_general", seq=42, text="Hello, world!")),
    "msg.delete": Delete(id=5, d=DeleteData(room="r_general", seq=42, all=True)),
    "msg.react": React(id=6, d=ReactData(room="r_general", seq=42, emoji="👍")),
    "msg.forward": Forward(
        id=7, d=ForwardData(room="r_general", seq=42, to=["r_random", "r_team"], cid="f9e8")
    ),
    "rcpt": ReceiptSet(id=8, d=ReceiptData(room="r_general", read=43)),
    "msg.edited": MsgEdited(
        d=EditedData(room="r_general", ev=7, seq=42, by="u_123", text="Hello, world!", at=_TS)
    ),
    "msg.deleted": MsgDeleted(d=DeletedData(room="r_general", seq=42, by="u_123", at=_TS, ev=8)),
    "msg.reaction": MsgReaction(
        d=ReactionData(room="r_general", ev=9, seq=42, user="u_456", emoji="👍")
    ),
    "rcpt.update": ReceiptUpdate(
        d=ReceiptUpdateData(room="r_general", ev=10, user="u_456", read=43, dlv=43)
    ),
    "msg.pin": Pin(id=9, d=PinData(room="r_general", seq=42)),
    "room.disappear": Disappear(id=10, d=DisappearData(room="r_general", ttl="7d")),
    "msg.pinned": MsgPinned(
        d=PinnedData(room="r_general", ev=11, seq=42, by="u_123", at=_TS, pins=[17, 42])
    ),
    "room.disappearing": RoomDisappearing(
        d=DisappearingData(room="r_general", ev=12, by="u_123", ttl="7d", at=_TS)
    ),
}

# Content shapes shown in docs/protocol.md's "Message kinds" section.
LOCATION_EXAMPLE = Location(lat=36.8065, lon=10.1815, label="Tunis")
CONTACT_EXAMPLE = Contact(name="Ada Lovelace", phones=["+216 71 000 000"])
