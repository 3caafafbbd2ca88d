"""Builders for storage tests: users, rooms and messages with little ceremony."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from storage.base import Room, RoomMember, Store, StoredMessage, User, new_id, now_ms

MakeUser = Callable[[str], Awaitable[User]]
MakeRoom = Callable[..., Awaitable[Room]]


def message(
    room: Room | str,
    seq: int,
    sender: User | str,
    *,
    cid: str | None = None,
    text: str | None = None,
    created_at: int | None = None,
) -> StoredMessage:
    room_id = room if isinstance(room, str) else room.id
    sender_id = sender if isinstance(sender, str) else sender.id
    return StoredMessage(
        id=new_id("m_"),
        room_id=room_id,
        seq=seq,
        sender_id=sender_id,
        cid=cid if cid is not None else f"c{seq}",
        text=text if text is not None else f"message {seq}",
        created_at=created_at if created_at is not None else now_ms(),
    )


@pytest.fixture
def make_user(store: Store) -> MakeUser:
    async def make(name: str) -> User:
        user = User(
            id=new_id("u_"),
            email=f"{name}@example.com",
            username=name,
            display_name=name.title(),
            password_hash="argon2-hash",
            created_at=now_ms(),
        )
        await store.create_user(user)
        return user

    return make


@pytest.fixture
def make_room(store: Store) -> MakeRoom:
    async def make(
        owner: User, *others: User, name: str = "room", created_at: int | None = None
    ) -> Room:
        members = (RoomMember(owner.id, "owner"),) + tuple(
            RoomMember(u.id, "member") for u in others
        )
        room = Room(
            id=new_id("r_"),
            kind="group",
            name=name,
            created_by=owner.id,
            created_at=created_at if created_at is not None else now_ms(),
            members=members,
        )
        return await store.create_room(room)

    return make


@pytest.fixture
def msg() -> Callable[..., StoredMessage]:
    """``msg(room, seq, sender, cid=..., text=..., created_at=...)``."""
    return message
