"""``AiStore`` on both backends: conversations, folders, presets, answers, usage."""

from __future__ import annotations

import pytest

from storage.ai import AiAnswer, AiConversation, AiFolder, AiPreset, ai_store
from storage.base import Room, RoomMember, Store, User
from storage.errors import NotFound


async def make_user(store: Store, name: str) -> str:
    await store.create_user(User(f"u_{name}", f"{name}@x.test", name, name, "hash", 1))
    return f"u_{name}"


async def make_conversation(store: Store, user: str, room_id: str, at: int) -> AiConversation:
    await store.create_room(Room(room_id, "ai", "", user, at, (RoomMember(user, "owner"),)))
    conv = AiConversation(room_id, user, "", "m", "", None, None, None, None, False, at, at)
    await ai_store(store).create_conversation(conv)
    return conv


async def test_conversations_are_listed_filtered_updated_and_deleted(store: Store):
    ai = ai_store(store)
    alice = await make_user(store, "alice")
    await ai.create_folder(AiFolder("f1", alice, "Work", 1))
    first = await make_conversation(store, alice, "r1", 10)
    await make_conversation(store, alice, "r2", 20)
    updated = await ai.update_conversation(
        "r1", {"folder_id": "f1", "favourite": True, "temperature": 0.5, "updated_at": 30}
    )
    assert updated is not None and updated.favourite is True and updated.temperature == 0.5
    listed = await ai.list_conversations(alice, folder_id=None, favourite=None, limit=10, offset=0)
    assert [c.room_id for c in listed] == ["r1", "r2"]
    in_folder = await ai.list_conversations(
        alice, folder_id="f1", favourite=None, limit=10, offset=0
    )
    assert [c.room_id for c in in_folder] == ["r1"]
    plain = await ai.list_conversations(alice, folder_id=None, favourite=False, limit=10, offset=0)
    assert [c.room_id for c in plain] == ["r2"]
    await ai.delete_folder("f1")
    conv = await ai.get_conversation("r1")
    assert conv is not None and conv.folder_id is None
    with pytest.raises(ValueError):
        await ai.update_conversation("r1", {"room_id": "x"})
    assert await ai.delete_conversation(first.room_id) is True
    assert await ai.get_conversation("r1") is None and await store.get_room("r1") is None
    assert await ai.delete_conversation("r1") is False


async def test_answers_hidden_ranges_and_presets_round_trip(store: Store):
    ai = ai_store(store)
    alice = await make_user(store, "alice")
    await make_conversation(store, alice, "r1", 1)
    answer = AiAnswer("m2", "r1", 2, "g1", alice, "m", "stopped", 5, 7, 3)
    await ai.add_answer(answer)
    assert await ai.answers("r1") == [answer]
    await ai.hide("r1", 2, 4)
    assert await ai.hidden("r1") == [(2, 4)]
    preset = AiPreset("p1", alice, "Pirate", "m", "Arr.", 0.2, 64, 1)
    await ai.create_preset(preset)
    assert await ai.get_preset("p1") == preset
    assert await ai.list_presets(alice) == [preset]
    await ai.delete_preset("p1")
    assert await ai.get_preset("p1") is None
    with pytest.raises(NotFound):
        await ai.create_folder(AiFolder("f9", "u_nobody", "x", 1))


async def test_usage_adds_up_per_period(store: Store):
    ai = ai_store(store)
    alice = await make_user(store, "alice")
    await ai.add_usage(alice, ["2026-11-24", "2026-11"], 10, 20)
    await ai.add_usage(alice, ["2026-11-25", "2026-11"], 1, 2)
    rows = await ai.usage(alice, ["2026-11-24", "2026-11", "2026-12"])
    assert (rows["2026-11"].messages, rows["2026-11"].prompt_tokens) == (2, 11)
    assert rows["2026-11"].completion_tokens == 22
    assert rows["2026-11-24"].messages == 1 and rows["2026-12"].messages == 0
