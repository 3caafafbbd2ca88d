"""Request and response bodies of the REST API, as msgspec Structs.

These classes are the single source of truth: requests are decoded into them
(strictly: no type coercion, unknown fields refused), responses are encoded
from them, and ``bridge.http.openapi`` generates the published schema from them.
Limits live in the ``Annotated`` metadata so the schema shows them too.
"""

from __future__ import annotations

from typing import Annotated, Literal, cast

import msgspec

from actors.room_rules import to_wire
from protocol.frames_chat import Contact, Location, Reaction, ReplyPreview, StoryQuote
from storage.base import Room, RoomSummary, StoredMessage, User

# Postgres BIGINT: a larger seq would overflow in the query rather than mean anything.
MAX_SEQ = 2**63 - 1

# Users
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$", examples=["ada@example.com"]
    ),
]
Username = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=32,
        pattern=r"^[A-Za-z0-9_.]+$",
        description="Unique regardless of case.",
        examples=["ada_l"],
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=256)]
# At least one visible character: a blank name renders as nothing. No NUL:
# PostgreSQL cannot store it (SQLite would), so both refuse it alike (issue 12).
VISIBLE_NO_NUL = r"^[^\x00]*[^\s\x00][^\x00]*$"
NO_NUL = r"^[^\x00]*$"
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=VISIBLE_NO_NUL)]
Device = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        description="Names the signed-in device; each device is its own session.",
    ),
]
UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
RoomName = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=VISIBLE_NO_NUL)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]


class _Request(msgspec.Struct, forbid_unknown_fields=True):
    """Bodies clients send: a misspelt field is an error, not silently ignored."""


# ----- auth -----------------------------------------------------------------


class RegisterRequest(_Request):
    email: Email
    username: Username
    password: Password
    display_name: DisplayName | None = None
    device: Device = "default"


class LoginRequest(_Request):
    login: Annotated[
        str, msgspec.Meta(min_length=1, max_length=254, description="Email or username.")
    ]
    # No minimum here: the rule for new passwords may change, old ones must still work.
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    device: Device = "default"


class RefreshRequest(_Request):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class UpdateMeRequest(_Request):
    display_name: DisplayName


class UserOut(msgspec.Struct):
    id: str
    email: str | None  # None: an account made by phone or Google without one
    username: str | None  # None until a phone or Google sign-up completes its profile
    display_name: str
    created_at: int  # ms since the Unix epoch

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(user.id, user.email, user.username, user.display_name, user.created_at)


class PublicUser(msgspec.Struct):
    id: str
    username: str | None
    display_name: str

    @classmethod
    def of(cls, user: User) -> PublicUser:
        return cls(user.id, user.username, user.display_name)


class TokenResponse(msgspec.Struct):
    access_token: str
    refresh_token: str
    expires_in: Annotated[int, msgspec.Meta(description="Seconds the access token lives.")]
    token_type: Literal["Bearer"] = "Bearer"


class AuthResponse(msgspec.Struct):
    user: UserOut
    access_token: str
    refresh_token: str
    expires_in: Annotated[int, msgspec.Meta(description="Seconds the access token lives.")]
    token_type: Literal["Bearer"] = "Bearer"


# ----- rooms ----------------------------------------------------------------


class CreateDirectRoom(_Request, tag_field="kind", tag="direct"):
    """The direct room of you and ``user_id``; the same pair always gets the same room."""

    user_id: UserId


class CreateGroupRoom(_Request, tag_field="kind", tag="group"):
    name: RoomName
    members: Annotated[
        list[UserId],
        msgspec.Meta(max_length=256, description="Other members; you join as owner."),
    ] = []


CreateRoomRequest = CreateDirectRoom | CreateGroupRoom


class ReadRequest(_Request):
    seq: Seq


# "ai": a ChatGPT-style conversation whose only member is its owner (actors/ai_service.py).
RoomKind = Literal["direct", "group", "ai"]
Role = Literal["owner", "admin", "member"]


class MemberOut(msgspec.Struct):
    user_id: str
    role: Role


class RoomOut(msgspec.Struct, kw_only=True):
    id: str
    kind: RoomKind
    name: str  # "" for direct rooms: clients show the other member's name
    created_by: str
    created_at: int
    members: list[MemberOut]

    @classmethod
    def of(cls, room: Room) -> RoomOut:
        return cls(
            id=room.id,
            kind=cast(RoomKind, room.kind),
            name=room.name,
            created_by=room.created_by,
            created_at=room.created_at,
            members=_members(room),
        )


class RoomEnvelope(msgspec.Struct):
    room: RoomOut


class MessageOut(msgspec.Struct):
    """A room message; the same field names as ``protocol.frames.Message``.

    Not that class itself: it omits ``kind`` when it is "text" to save bytes
    on the socket, while REST clients get every field every time.
    """

    id: str
    room: str
    seq: int
    sender: str
    cid: str
    text: str
    ts: int  # ms since the Unix epoch, when the server stored it
    kind: str = "text"
    # Rich messaging (issue 3); see protocol.frames.Message for each field.
    reply: ReplyPreview | None = None
    fwd: bool = False
    media: str | None = None
    loc: Location | None = None
    contact: Contact | None = None
    edited: int | None = None
    deleted: bool = False
    reactions: list[Reaction] | None = None  # only GET /rooms/{id}/history fills it
    expires_at: int | None = None  # disappearing messages: deleted for everyone then
    story: StoryQuote | None = None  # a reply to a story: what it quotes of the story

    @classmethod
    def of(cls, m: StoredMessage) -> MessageOut:
        w = to_wire(m)
        return cls(
            w.id, w.room, w.seq, w.sender, w.cid, w.text, w.ts, w.kind,
            w.reply, w.fwd, w.media, w.loc, w.contact, w.edited, w.deleted,
            expires_at=w.expires_at, story=w.story,
        )  # fmt: skip


class RoomSummaryOut(RoomOut, kw_only=True):
    last_message: MessageOut | None
    last_seq: int
    read_seq: Annotated[int, msgspec.Meta(description="Your read cursor in this room.")]
    unread: int

    @classmethod
    def of_summary(cls, summary: RoomSummary, user_id: str) -> RoomSummaryOut:
        read_seq = next((m.read_seq for m in summary.room.members if m.user_id == user_id), 0)
        last = summary.last_message
        room = summary.room
        return cls(
            id=room.id,
            kind=cast(RoomKind, room.kind),
            name=room.name,
            created_by=room.created_by,
            created_at=room.created_at,
            members=_members(room),
            last_message=MessageOut.of(last) if last is not None else None,
            last_seq=summary.last_seq,
            read_seq=read_seq,
            unread=summary.unread,
        )


class RoomList(msgspec.Struct):
    rooms: list[RoomSummaryOut]


class MessagePage(msgspec.Struct):
    messages: list[MessageOut]  # ascending seq
    has_more: Annotated[
        bool, msgspec.Meta(description="More messages exist beyond this page, in its direction.")
    ]


class ReadResponse(msgspec.Struct):
    read_seq: int


class Status(msgspec.Struct):
    status: Literal["ok"] = "ok"


class Health(msgspec.Struct, omit_defaults=True):
    status: Literal["ok"]  # no default: omit_defaults would leave it out
    # NODE_ID of the node that answered (several nodes or workers behind one
    # address); absent when NODE_ID is not set.
    node: str = ""


def _members(room: Room) -> list[MemberOut]:
    # Storage keeps roles as plain text; these three are all it writes.
    return [MemberOut(m.user_id, cast(Role, m.role)) for m in room.members]


# ----- query strings --------------------------------------------------------
# Decoded with msgspec.convert(strict=False) so "50" becomes 50; unknown
# parameters are ignored (cache busters are common in query strings).


class RoomListQuery(msgspec.Struct, frozen=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50
    offset: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0


_Before = Annotated[Seq | None, msgspec.Meta(description="The messages just below this seq.")]
_After = Annotated[Seq | None, msgspec.Meta(description="The messages just above this seq.")]


class HistoryQuery(msgspec.Struct, frozen=True):
    before: _Before = None
    after: _After = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50
