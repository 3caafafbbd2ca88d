"""The local-disk blob store: what a cloud store must also do."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.blobs import BlobNotFound, LocalBlobStore


async def test_blobs_round_trip_and_delete(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "media")
    await blobs.put("f_abc123", b"\x00bytes\xff")
    assert await blobs.get("f_abc123") == b"\x00bytes\xff"
    await blobs.put("f_abc123", b"replaced")  # a rewrite replaces atomically
    assert await blobs.get("f_abc123") == b"replaced"
    assert not list((tmp_path / "media").rglob("*.tmp"))
    await blobs.delete("f_abc123")
    await blobs.delete("f_abc123")  # deleting twice is fine
    with pytest.raises(BlobNotFound):
        await blobs.get("f_abc123")


@pytest.mark.parametrize("key", ["../escape", "a/b", "", ".hidden", "x" * 200])
async def test_keys_cannot_leave_the_store_directory(tmp_path: Path, key: str) -> None:
    blobs = LocalBlobStore(tmp_path / "media")
    with pytest.raises(ValueError):
        await blobs.put(key, b"x")
    assert not (tmp_path / "escape").exists()
