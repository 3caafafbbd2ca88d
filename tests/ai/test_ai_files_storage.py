"""``AiFilesStore`` on both backends: files and chunks, ranked search, limits, citations."""

from __future__ import annotations

import pytest
import trio

from storage.ai import AiPreset, ai_store
from storage.ai_files import AiFile, FileRef, ai_files_store
from storage.base import Room, RoomMember, Store
from storage.errors import NotFound
from tests.ai.test_ai_storage import make_user


async def make_preset(store: Store, user: str, preset_id: str) -> str:
    await ai_store(store).create_preset(AiPreset(preset_id, user, "P", "m", "", None, None, 1))
    return preset_id


def a_file(file_id: str, preset: str, user: str, chunks: list[str], at: int = 1) -> AiFile:
    return AiFile(file_id, preset, user, f"{file_id}.md", "text/markdown", 10, 10, len(chunks), at)


async def test_files_are_stored_listed_read_back_and_deleted_with_their_chunks(store: Store):
    files = ai_files_store(store)
    alice = await make_user(store, "alice")
    preset = await make_preset(store, alice, "p1")
    chunks = ["Ships sail.\n\n", "Harbours shelter ships."]
    assert await files.add_file(a_file("f1", preset, alice, chunks), chunks, max_files=5)
    assert await files.add_file(a_file("f2", preset, alice, ["Other"], 2), ["Other"], max_files=5)
    assert [f.id for f in await files.list_files(preset)] == ["f1", "f2"]
    assert await files.get_file("f1") == a_file("f1", preset, alice, chunks)
    assert await files.file_text("f1") == "Ships sail.\n\nHarbours shelter ships."

    assert await files.delete_file("f1") is True
    assert await files.delete_file("f1") is False
    assert await files.get_file("f1") is None and await files.file_text("f1") == ""
    # The full-text index forgot the deleted chunks too.
    assert await files.search(preset, alice, ["ships"], 10) == []
    # Deleting the preset takes its files (and their index entries) with it.
    await ai_store(store).delete_preset(preset)
    assert await files.list_files(preset) == []
    assert await files.search(preset, alice, ["other"], 10) == []


async def test_search_matches_any_word_best_first_in_the_preset_of_the_owner(store: Store):
    files = ai_files_store(store)
    alice = await make_user(store, "alice")
    bob = await make_user(store, "bob")
    mine = await make_preset(store, alice, "p1")
    theirs = await make_preset(store, bob, "p2")
    chunks = [
        "Cloves and nutmeg are spices traded for centuries.",
        "Zanzibar grows cloves; Zanzibar cloves are famous. Cloves everywhere.",
        "The weather report says rain tomorrow.",
    ]
    await files.add_file(a_file("f1", mine, alice, chunks), chunks, max_files=5)
    await files.add_file(a_file("g1", theirs, bob, chunks[1:2]), chunks[1:2], max_files=5)

    found = await files.search(mine, alice, ["zanzibar", "cloves"], 10)
    assert [(c.file_id, c.n) for c in found] == [("f1", 1), ("f1", 0)]
    assert found[0].name == "f1.md" and found[0].text == chunks[1]
    assert [c.n for c in await files.search(mine, alice, ["rain", "unknownword"], 10)] == [2]
    assert await files.search(mine, alice, ["unknownword"], 10) == []
    assert len(await files.search(mine, alice, ["cloves"], 1)) == 1
    # Someone else's preset, or someone else asking, finds nothing.
    assert await files.search(mine, bob, ["cloves"], 10) == []
    assert [c.file_id for c in await files.search(theirs, bob, ["cloves"], 10)] == ["g1"]


async def test_leading_chunks_take_each_file_in_turn(store: Store):
    files = ai_files_store(store)
    alice = await make_user(store, "alice")
    preset = await make_preset(store, alice, "p1")
    await files.add_file(a_file("f1", preset, alice, ["a0", "a1"], 1), ["a0", "a1"], max_files=5)
    await files.add_file(a_file("f2", preset, alice, ["b0", "b1"], 2), ["b0", "b1"], max_files=5)
    assert [c.text for c in await files.leading(preset, alice, 3)] == ["a0", "b0", "a1"]


async def test_a_preset_holds_at_most_max_files_even_under_concurrent_uploads(store: Store):
    files = ai_files_store(store)
    alice = await make_user(store, "alice")
    preset = await make_preset(store, alice, "p1")
    results: list[bool] = []

    async def add(i: int) -> None:
        results.append(
            await files.add_file(a_file(f"f{i}", preset, alice, ["x"]), ["x"], max_files=3)
        )

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(add, i)
    assert sorted(results) == [False] * 3 + [True] * 3
    assert len(await files.list_files(preset)) == 3
    with pytest.raises(NotFound):
        await files.add_file(a_file("z", "gone", alice, ["x"]), ["x"], max_files=3)


async def test_citations_are_kept_per_generation_and_outlive_the_file(store: Store):
    files = ai_files_store(store)
    alice = await make_user(store, "alice")
    preset = await make_preset(store, alice, "p1")
    await files.add_file(a_file("f1", preset, alice, ["x"]), ["x"], max_files=5)
    await store.create_room(Room("r1", "ai", "", alice, 1, (RoomMember(alice, "owner"),)))
    refs = [FileRef("f1", "f1.md"), FileRef("f0", "old.pdf")]
    await files.cite("g1", "r1", refs)
    await files.cite("g2", "r1", refs[1:])
    await files.delete_file("f1")
    assert await files.cited("r1") == {"g1": refs, "g2": refs[1:]}
    await ai_store(store).delete_conversation("r1")  # deletes the room
    assert await files.cited("r1") == {}
