"""Where uploaded bytes live: a small interface and its local-disk twin.

A cloud store (S3, GCS) implements the same three calls; nothing else in the
server knows where bytes are kept. Keys are server-chosen (``new_id``-based),
never client text, so they are safe as file names.

``LocalBlobStore`` writes each blob to a temporary name and renames it into
place, so a reader never sees a half-written file and a crash leaves no torn
blob behind (only a stray ``.tmp`` file).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import trio

log = logging.getLogger(__name__)

_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class BlobNotFound(LookupError):
    pass


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes:
        """The blob's bytes; raises ``BlobNotFound``."""

    async def delete(self, key: str) -> None:
        """Remove the blob if present."""


class LocalBlobStore:
    """Blobs as files under ``root`` (``DATA_DIR/media`` by default)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key) or key.startswith("."):
            raise ValueError(f"bad blob key {key!r}")
        # Two levels of fan-out keep directories small with many uploads.
        return self.root / key[-2:] / key

    async def put(self, key: str, data: bytes) -> None:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)

        await trio.to_thread.run_sync(write)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await trio.to_thread.run_sync(path.read_bytes)
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    async def delete(self, key: str) -> None:
        await trio.to_thread.run_sync(lambda: self._path(key).unlink(missing_ok=True))


async def delete_blobs(blobs: BlobStore, keys: Iterable[str]) -> None:
    """Delete what is there; a blob already gone, or a disk error, only costs space."""
    for key in keys:
        try:
            await blobs.delete(key)
        except (BlobNotFound, OSError) as exc:
            log.warning("story blob %s not deleted: %r", key, exc)
