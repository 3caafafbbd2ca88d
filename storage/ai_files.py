"""Files in AI projects: their text in chunks, ranked against a question.

A preset ("project", ``storage.ai``) holds files. Only the text extracted on
upload is kept (``bridge.files.file_text`` extracts and cuts it), one row per chunk
in ``ai_file_chunks`` (migration 0014); the chunks of a file joined in order
are its text. A question finds the chunks of its project by full-text rank
(``search``), best first; ``ai_answer_files`` records which files each
answer's context quoted, by generation id, so the history can cite them even
after a file is removed.

Full-text search here matches ANY of the question's words, ranked: a question
rarely repeats every word of the passage that answers it, so the all-terms
match of ``Dialect.text_search`` (right for a search box) would find nothing.
The any-term query is the one fragment that differs per database
(``_any_term_search``), kept here beside its only user; it belongs in
``storage.sql.dialect`` if a second user appears.

``ai_files_store(store)`` works on the store's own ``Database``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from storage.sql.dialect import register_unique
from storage.sql.statements import Execute, ExecuteMany, FetchOne, Op, Row

from .errors import NotFound

if TYPE_CHECKING:
    from storage.sql.database import Database

    from .base import Store


@dataclass(frozen=True, slots=True)
class AiFile:
    id: str
    preset_id: str
    user_id: str
    name: str  # as the client named it; display only
    content_type: str  # from the bytes: text/plain, text/markdown, application/pdf, ...docx
    size: int  # bytes uploaded
    chars: int  # characters of extracted text
    chunks: int
    created_at: int


@dataclass(frozen=True, slots=True)
class FileChunk:
    file_id: str
    name: str
    n: int  # 0, 1, 2, ... within its file
    text: str


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file an answer's context quoted: its id and its name at the time."""

    id: str
    name: str


register_unique(sqlite={"ai_files.id": "id"}, postgres={"ai_files_pkey": "id"})

FILE_COLUMNS = "id, preset_id, user_id, name, content_type, size, chars, chunks, created_at"
_CHUNK_COLUMNS = "c.file_id, f.name, c.n, c.text"


def _any_term_search(dialect: str, terms: Sequence[str]) -> tuple[str, str, str]:
    """``(join, rank, param)`` for chunks ``c`` matching any of ``terms``.

    ``terms`` must be words of letters and digits only (``actors.ai_files``
    cuts them so), which is what makes them safe inside either query syntax.
    """
    if dialect == "sqlite":
        fts = "ai_file_chunks_fts"
        join = f"JOIN {fts} ON {fts}.rowid = c.rowid AND {fts} MATCH ?"
        return join, f"bm25({fts})", " OR ".join(f'"{t}"' for t in terms)
    vector = "to_tsvector('simple', c.text)"  # the expression of the GIN index
    join = f"JOIN to_tsquery('simple', ?) AS q ON {vector} @@ q"
    return join, f"ts_rank({vector}, q) DESC", " | ".join(f"'{t}'" for t in terms)


def _chunk(row: Row) -> FileChunk:
    return FileChunk(str(row[0]), str(row[1]), int(row[2]), str(row[3]))


class AiFilesStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # ----- files -----

    async def add_file(self, file: AiFile, chunks: Sequence[str], *, max_files: int) -> bool:
        """Store ``file`` and its chunks; False (nothing stored) when its preset
        already holds ``max_files``. Raises ``NotFound`` if the preset is gone."""
        return await self._db.write(self._add_file_op(file, chunks, max_files))

    def _add_file_op(self, file: AiFile, chunks: Sequence[str], max_files: int) -> Op[bool]:
        # The preset row is locked first, so two uploads at the limit cannot
        # both count the files before either inserts (SQLite's write
        # transaction excludes the other writer anyway).
        preset = yield FetchOne(
            f"SELECT id FROM ai_presets WHERE id = ?{self._db.dialect.for_update()}",
            (file.preset_id,),
        )
        if preset is None:
            raise NotFound("preset")
        count = yield FetchOne(
            "SELECT COUNT(*) FROM ai_files WHERE preset_id = ?", (file.preset_id,)
        )
        if int(count[0]) >= max_files:
            return False
        yield Execute(
            f"INSERT INTO ai_files ({FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                file.id,
                file.preset_id,
                file.user_id,
                file.name,
                file.content_type,
                file.size,
                file.chars,
                file.chunks,
                file.created_at,
            ),
        )
        yield ExecuteMany(
            "INSERT INTO ai_file_chunks (file_id, preset_id, n, text) VALUES (?, ?, ?, ?)",
            [(file.id, file.preset_id, n, text) for n, text in enumerate(chunks)],
        )
        return True

    async def get_file(self, file_id: str) -> AiFile | None:
        row = await self._db.fetchone(
            f"SELECT {FILE_COLUMNS} FROM ai_files WHERE id = ?", (file_id,)
        )
        return None if row is None else AiFile(*row)

    async def list_files(self, preset_id: str) -> list[AiFile]:
        """Oldest first (upload order)."""
        rows = await self._db.fetch(
            f"SELECT {FILE_COLUMNS} FROM ai_files WHERE preset_id = ? ORDER BY created_at, id",
            (preset_id,),
        )
        return [AiFile(*r) for r in rows]

    async def file_text(self, file_id: str) -> str:
        rows = await self._db.fetch(
            "SELECT text FROM ai_file_chunks WHERE file_id = ? ORDER BY n", (file_id,)
        )
        return "".join(str(r[0]) for r in rows)

    async def delete_file(self, file_id: str) -> bool:
        """The file and its chunks (they cascade); citations of it stay."""
        return await self._db.execute("DELETE FROM ai_files WHERE id = ?", (file_id,)) > 0

    # ----- chunks for a question -----

    async def search(
        self, preset_id: str, user_id: str, terms: Sequence[str], limit: int
    ) -> list[FileChunk]:
        """Chunks of ``user_id``'s files in the preset matching any of ``terms``, best first."""
        if not terms or limit <= 0:
            return []
        join, rank, query = _any_term_search(self._db.dialect.name, terms)
        rows = await self._db.fetch(
            f"SELECT {_CHUNK_COLUMNS} FROM ai_file_chunks c {join}"
            " JOIN ai_files f ON f.id = c.file_id"
            " WHERE c.preset_id = ? AND f.user_id = ?"
            f" ORDER BY {rank}, f.created_at, c.file_id, c.n LIMIT ?",
            (query, preset_id, user_id, limit),
        )
        return [_chunk(r) for r in rows]

    async def leading(self, preset_id: str, user_id: str, limit: int) -> list[FileChunk]:
        """The first chunks of ``user_id``'s files in the preset, taken in turns:
        each file's part 0 (upload order), then each file's part 1, and so on."""
        if limit <= 0:
            return []
        rows = await self._db.fetch(
            f"SELECT {_CHUNK_COLUMNS} FROM ai_file_chunks c"
            " JOIN ai_files f ON f.id = c.file_id"
            " WHERE c.preset_id = ? AND f.user_id = ?"
            " ORDER BY c.n, f.created_at, c.file_id LIMIT ?",
            (preset_id, user_id, limit),
        )
        return [_chunk(r) for r in rows]

    # ----- citations -----

    async def cite(self, gen_id: str, room_id: str, files: Sequence[FileRef]) -> None:
        """Record that generation ``gen_id``'s context quoted ``files`` (in this order)."""
        await self._db.executemany(
            "INSERT INTO ai_answer_files (gen_id, room_id, file_id, name, pos)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (gen_id, file_id) DO NOTHING",
            [(gen_id, room_id, f.id, f.name, i) for i, f in enumerate(files)],
        )

    async def cited(self, room_id: str) -> dict[str, list[FileRef]]:
        """Generation id -> the files its context quoted, for every answer of a room."""
        rows = await self._db.fetch(
            "SELECT gen_id, file_id, name FROM ai_answer_files WHERE room_id = ?"
            " ORDER BY gen_id, pos",
            (room_id,),
        )
        found: dict[str, list[FileRef]] = {}
        for gen_id, file_id, name in rows:
            found.setdefault(str(gen_id), []).append(FileRef(str(file_id), str(name)))
        return found


def ai_files_store(store: Store) -> AiFilesStore:
    """The ``AiFilesStore`` on ``store``'s database, sharing its connections."""
    return AiFilesStore(store.db)


__all__ = ["AiFile", "AiFilesStore", "FileChunk", "FileRef", "ai_files_store"]
