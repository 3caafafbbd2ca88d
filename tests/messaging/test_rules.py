"""The room's pure rules, without a room: emoji shape, kinds, permissions."""

from __future__ import annotations

import pytest

from actors.room_rules import (
    content_problem,
    delete_problem,
    edit_problem,
    is_emoji,
    scrub_reply,
    to_wire,
)
from protocol.frames import Message, SendData
from protocol.frames_chat import Location
from storage.base import StoredMessage

MSG = Message(id="m", room="r", seq=3, sender="u_a", cid="c", text="hi", ts=1_000)


@pytest.mark.parametrize("emoji", ["👍", "👍🏽", "❤️", "👨‍👩‍👧", "🇹🇳", "1️⃣", "#⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "☕", "🫠"])
def test_real_emoji_are_accepted(emoji: str) -> None:
    assert is_emoji(emoji)


@pytest.mark.parametrize(
    "emoji", ["", "a", "ok", "1", "👍 ", " 👍", "\u200d", "🏻", "\ufe0f", "👍" * 17, "©x", "<b>"]
)
def test_anything_else_is_not_an_emoji(emoji: str) -> None:
    assert not is_emoji(emoji)


def test_each_kind_needs_its_own_content_and_nothing_else() -> None:
    ok = SendData(room="r", cid="c", kind="location", loc=Location(lat=1, lon=2))
    assert content_problem(ok, 100) is None
    assert content_problem(SendData(room="r", cid="c", kind="image", media="m1"), 100) is None
    assert content_problem(SendData(room="r", cid="c", text=""), 100) is not None
    wrong = SendData(room="r", cid="c", kind="image", media="m1", loc=Location(lat=1, lon=2))
    assert content_problem(wrong, 100) == ("invalid", "'loc' does not belong in a image message.")
    too_long = SendData(room="r", cid="c", kind="image", media="m1", text="x" * 101)
    assert content_problem(too_long, 100)[0] == "message_too_long"  # type: ignore[index]


def test_only_the_sender_edits_and_never_a_tombstone() -> None:
    assert edit_problem(MSG, "u_a") is None
    assert edit_problem(MSG, "u_b")[0] == "forbidden"  # type: ignore[index]
    assert edit_problem(None, "u_a")[0] == "not_found"  # type: ignore[index]
    tomb = Message(**{**_fields(MSG), "deleted": True, "text": ""})
    assert edit_problem(tomb, "u_a")[0] == "conflict"  # type: ignore[index]


def test_delete_for_everyone_is_for_the_sender_or_an_admin_within_the_window() -> None:
    assert delete_problem(MSG, "u_a", "member", now=2_000, window_ms=5_000) is None
    assert delete_problem(MSG, "u_b", "admin", now=2_000, window_ms=5_000) is None
    assert delete_problem(MSG, "u_b", "owner", now=2_000, window_ms=5_000) is None
    assert delete_problem(MSG, "u_b", "member", 2_000, 5_000)[0] == "forbidden"  # type: ignore[index]
    assert delete_problem(MSG, "u_a", "member", 9_000, 5_000)[0] == "forbidden"  # type: ignore[index]
    assert delete_problem(MSG, "u_a", "member", 10**12, 0) is None  # 0: no window


def test_a_deleted_row_becomes_a_tombstone_and_a_scrubbed_reply_keeps_only_its_reference() -> None:
    row = StoredMessage("m", "r", 3, "u_a", "c", "", 1, "location", None, None, 5, 9)
    wire = to_wire(row)
    assert wire.deleted and wire.edited is None and wire.loc is None
    meta = '{"reply":{"seq":2,"sender":"u_b","text":"the secret"},"loc":{"lat":1.0,"lon":2.0}}'
    scrubbed = scrub_reply(meta)
    assert "secret" not in scrubbed and '"deleted":true' in scrubbed and '"lat":1.0' in scrubbed


def _fields(m: Message) -> dict[str, object]:
    return {f: getattr(m, f) for f in m.__struct_fields__}
