"""Actor messages are values: frozen, answered once through their own reply slot.

Plain tests, no event loop: what a message is, not what an actor does with it.
"""

from __future__ import annotations

import dataclasses

import msgspec
import pytest

from actors.call import CALL, Accept, CallMessage
from actors.once import Once
from actors.room import ROOM, GetPins, Post, PostAs, RoomMessage
from actors.room_changes import Change
from actors.runtime import ActorKind, Ask
from protocol.errors import ErrorCode
from protocol.frames_chat import ReactData


class RecordingSession:
    user_id = "u_ada"

    def __init__(self) -> None:
        self.frames: list[msgspec.Struct] = []

    def push_frame(self, frame: msgspec.Struct) -> None:
        self.frames.append(frame)


def test_a_request_cannot_be_changed_by_whoever_receives_it() -> None:
    post = Post(RecordingSession(), 1, "u_ada", "c1", "hello")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        post.text = "changed"  # type: ignore[misc]
    change = Change(None, 0, "u_ada", ReactData(room="r", seq=1, emoji="+1"))
    with pytest.raises(AttributeError):
        change.user_id = "u_bob"  # type: ignore[misc]
    accept = Accept(RecordingSession(), 2)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        accept.request_id = 3  # type: ignore[misc]


def test_a_request_is_answered_once_whichever_path_comes_first() -> None:
    session = RecordingSession()
    post = Post(session, 7, "u_ada", "c1", "hello")  # type: ignore[arg-type]
    post.reply_err(ErrorCode.INVALID, "first")
    post.reply_err(ErrorCode.INVALID, "second")
    assert [getattr(f, "msg", None) for f in session.frames] == ["first"]


def test_each_request_has_its_own_latch() -> None:
    a = Post(RecordingSession(), 1, "u_ada", "c1", "x")  # type: ignore[arg-type]
    b = Post(RecordingSession(), 2, "u_ada", "c2", "y")  # type: ignore[arg-type]
    assert a.once is not b.once
    assert a.claim() and b.claim()
    assert not a.claim()


def test_a_post_without_a_socket_is_answered_through_its_reply() -> None:
    post = PostAs("system", "c1", "hello")
    assert post.claim()
    post.reply_err(ErrorCode.INVALID, "no")
    assert not post.claim()


def test_kinds_are_their_names_and_asks_name_their_answer() -> None:
    assert isinstance(ROOM, ActorKind) and ROOM == "room"
    assert isinstance(CALL, ActorKind) and CALL == "call"
    assert isinstance(GetPins("u_ada"), Ask)
    once = Once()
    assert once.claim() and once.claimed and not once.claim()
    # The unions are closed: every member is a class a handler matches on.
    assert all(isinstance(t, type) for t in RoomMessage.__args__)
    assert all(isinstance(t, type) for t in CallMessage.__args__)
