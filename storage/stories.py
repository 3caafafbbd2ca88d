"""Stories: 24-hour status updates (issue 15, part 1).

Written once for both databases on the main store's ``Database``.

Rules:
- A story is live from ``created_at`` to ``expires_at``; every read takes
  ``now`` from the caller (the node's one clock), so expiry is exact without a
  sweeper, and tests move a manual clock instead of waiting. The sweeper
  (``expired``/``forget``) only removes what nobody can see any more.
- The audience is fixed when posted: ``post`` writes one ``story_audience``
  row per user allowed then (see ``audience``), in the same transaction as
  the story. Blocks are checked again on every read, either way round, so a
  block made later hides the story too.
- The author always sees their own stories, views and reactions; nobody
  else sees who viewed.
- A story kept in a highlight outlives its 24 hours for its original
  audience, until removed from every highlight or deleted.
- Another user's story id answers like an unknown one (None / False): a
  client cannot tell a story exists that it may not see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage.sql.database import Database
from storage.sql.dialect import Dialect
from storage.sql.statements import Execute, ExecuteMany, Fetch, FetchOne, Op

from .base import Store

KINDS = ("text", "image", "video")
PRIVACY = ("contacts", "except", "only")

_COLUMNS = (
    "s.id, s.author_id, s.kind, s.text, s.bg, s.font, s.media_id, s.privacy,"
    " s.created_at, s.expires_at"
)


@dataclass(frozen=True, slots=True)
class Story:
    id: str
    author_id: str
    kind: str
    text: str
    bg: str
    font: str
    media_id: str | None
    privacy: str
    created_at: int
    expires_at: int
    # For the reader: whether they viewed it, and their reaction.
    seen: bool = False
    reaction: str | None = None


@dataclass(frozen=True, slots=True)
class View:
    viewer_id: str
    viewed_at: int
    reaction: str | None
    reacted_at: int | None


@dataclass(frozen=True, slots=True)
class Highlight:
    id: str
    owner_id: str
    name: str
    created_at: int
    story_ids: tuple[str, ...]


def _story(r: Sequence[Any], seen: bool = False, reaction: str | None = None) -> Story:
    sid, author, kind, text, bg, font, media, privacy, created, expires = r[:10]
    return Story(
        sid,
        author,
        kind,
        text,
        bg,
        font,
        media,
        privacy,
        int(created),
        int(expires),
        seen,
        reaction,
    )


def _not_blocked(alias: str = "s") -> str:
    """No block between the reader (parameter) and the author, either way."""
    return (
        "NOT EXISTS (SELECT 1 FROM blocks b WHERE"
        f" (b.blocker_id = {alias}.author_id AND b.blocked_id = ?)"
        f" OR (b.blocker_id = ? AND b.blocked_id = {alias}.author_id))"
    )


# A reader may see a story: theirs, or in its audience and not blocked.
_VISIBLE = (
    f"(s.author_id = ? OR (EXISTS (SELECT 1 FROM story_audience a"
    f" WHERE a.story_id = s.id AND a.user_id = ?) AND {_not_blocked()}))"
)


def _visible_params(reader: str) -> tuple[str, ...]:
    return (reader, reader, reader, reader)


def _live_or_highlighted() -> str:
    return (
        "(s.expires_at > ? OR EXISTS (SELECT 1 FROM story_highlight_items i"
        " WHERE i.story_id = s.id))"
    )


def _audience(d: Dialect, author: str, privacy: str, listed: list[str]) -> Op[list[str]]:
    """Who may see a story posted now (see ``StoryStore.post``)."""
    if privacy == "only":
        rows = yield Fetch(
            f"SELECT u.id FROM users u WHERE {d.in_list('u.id')} AND u.id <> ?",
            (d.array(listed), author),
        )
    else:
        rows = yield Fetch(
            "SELECT contact_id FROM contacts WHERE owner_id = ?"
            f" AND NOT ({d.in_list('contact_id')})",
            (author, d.array(listed)),
        )
    wanted = [r[0] for r in rows]
    if not wanted:
        return []
    blocked = yield Fetch(
        "SELECT blocked_id FROM blocks WHERE blocker_id = ?"
        f" AND {d.in_list('blocked_id')}"
        " UNION SELECT blocker_id FROM blocks WHERE blocked_id = ?"
        f" AND {d.in_list('blocker_id')}",
        (author, d.array(wanted), author, d.array(wanted)),
    )
    out = {r[0] for r in blocked}
    return sorted(u for u in wanted if u not in out)


def _post(d: Dialect, story: Story, listed: list[str]) -> Op[list[str]]:
    audience = yield from _audience(d, story.author_id, story.privacy, listed)
    yield Execute(
        "INSERT INTO stories (id, author_id, kind, text, bg, font, media_id, privacy,"
        " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            story.id,
            story.author_id,
            story.kind,
            story.text,
            story.bg,
            story.font,
            story.media_id,
            story.privacy,
            story.created_at,
            story.expires_at,
        ),
    )
    if audience:
        yield ExecuteMany(
            "INSERT INTO story_audience (story_id, user_id) VALUES (?, ?)",
            [(story.id, u) for u in audience],
        )
    return audience


def _view(story_id: str, viewer: str, at: int, reaction: str | None) -> Op[bool]:
    """Record a view (and a reaction); False when the row was there already
    and nothing new happened."""
    if reaction is None:
        added = yield Execute(
            "INSERT INTO story_views (story_id, viewer_id, viewed_at) VALUES (?, ?, ?)"
            " ON CONFLICT (story_id, viewer_id) DO NOTHING",
            (story_id, viewer, at),
        )
        return bool(added)
    yield Execute(
        "INSERT INTO story_views (story_id, viewer_id, viewed_at, reaction, reacted_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (story_id, viewer_id) DO UPDATE"
        " SET reaction = excluded.reaction, reacted_at = excluded.reacted_at",
        (story_id, viewer, at, reaction, at),
    )
    return True


def _highlight(owner: str, highlight_id: str, name: str, ids: list[str], at: int) -> Op[None]:
    yield Execute(
        "INSERT INTO story_highlights (id, owner_id, name, created_at) VALUES (?, ?, ?, ?)",
        (highlight_id, owner, name, at),
    )
    yield ExecuteMany(
        "INSERT INTO story_highlight_items (highlight_id, story_id, added_at) VALUES (?, ?, ?)",
        [(highlight_id, s, at) for s in ids],
    )


def _unused_media(d: Dialect, media_ids: list[str]) -> Op[list[str]]:
    """Delete the media rows of these uploads that nothing uses any more (no
    story left, never sent in a room); returns their blob keys for the blob
    store. Called after the stories themselves were deleted."""
    if not media_ids:
        return []
    rows = yield Fetch(
        "DELETE FROM media WHERE"
        f" {d.in_list('id')}"
        " AND NOT EXISTS (SELECT 1 FROM stories s WHERE s.media_id = media.id)"
        " AND NOT EXISTS (SELECT 1 FROM media_rooms r WHERE r.media_id = media.id)"
        " RETURNING blob_key, thumb_key",
        (d.array(media_ids),),
    )
    return [k for r in rows for k in r if k is not None]


def _forget(d: Dialect, now: int, limit: int) -> Op[list[str]]:
    """Delete expired stories no highlight keeps; returns the blob keys to delete."""
    rows = yield Fetch(
        "SELECT s.id, s.media_id FROM stories s WHERE s.expires_at <= ? AND NOT EXISTS"
        " (SELECT 1 FROM story_highlight_items i WHERE i.story_id = s.id)"
        " ORDER BY s.expires_at LIMIT ?",
        (now, limit),
    )
    if not rows:
        return []
    yield Execute(f"DELETE FROM stories WHERE {d.in_list('id')}", (d.array([r[0] for r in rows]),))
    keys = yield from _unused_media(d, [r[1] for r in rows if r[1] is not None])
    return keys


def _delete(d: Dialect, story_id: str, author: str) -> Op[list[str] | None]:
    row = yield FetchOne(
        "DELETE FROM stories WHERE id = ? AND author_id = ? RETURNING media_id",
        (story_id, author),
    )
    if row is None:
        return None
    keys = yield from _unused_media(d, [] if row[0] is None else [str(row[0])])
    return keys


class StoryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def post(self, story: Story, listed: Sequence[str]) -> list[str]:
        """Store ``story`` with its audience fixed now; returns the audience.

        ``contacts``: the author's contacts; ``except``: those but ``listed``;
        ``only``: ``listed`` (any known users). Blocked users either way are
        never in it, nor the author.
        """
        wanted = list(dict.fromkeys(listed))
        return await self._db.write(_post(self._db.dialect, story, wanted))

    async def get(self, story_id: str, reader: str, now: int) -> Story | None:
        """A live (or highlighted) story ``reader`` may see, else None."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS}, v.viewed_at, v.reaction FROM stories s"
            " LEFT JOIN story_views v ON v.story_id = s.id AND v.viewer_id = ?"
            f" WHERE s.id = ? AND {_VISIBLE} AND {_live_or_highlighted()}",
            (reader, story_id, *_visible_params(reader), now),
        )
        return None if row is None else _story(row, row[10] is not None, row[11])

    async def live(self, story_id: str, reader: str, now: int) -> Story | None:
        """Like ``get`` but only within its 24 hours: what can be viewed,
        reacted to and replied to."""
        story = await self.get(story_id, reader, now)
        return story if story is not None and story.expires_at > now else None

    async def own(self, story_id: str, author: str) -> Story | None:
        """The author's story whatever its age (highlights, deletion)."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM stories s WHERE s.id = ? AND s.author_id = ?",
            (story_id, author),
        )
        return None if row is None else _story(row)

    async def mine(self, author: str, now: int) -> list[Story]:
        """The author's live stories, oldest first."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM stories s WHERE s.author_id = ? AND s.expires_at > ?"
            " ORDER BY s.created_at, s.id",
            (author, now),
        )
        return [_story(r) for r in rows]

    async def feed(self, reader: str, now: int) -> list[Story]:
        """Live stories of others that ``reader`` may see, each with its seen
        flag, by author then oldest first (the caller orders the authors)."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS}, v.viewed_at, v.reaction FROM story_audience a"
            " JOIN stories s ON s.id = a.story_id"
            " LEFT JOIN story_views v ON v.story_id = s.id AND v.viewer_id = ?"
            f" WHERE a.user_id = ? AND s.expires_at > ? AND {_not_blocked()}"
            " ORDER BY s.author_id, s.created_at, s.id",
            (reader, reader, now, reader, reader),
        )
        return [_story(r, r[10] is not None, r[11]) for r in rows]

    async def view(self, story_id: str, viewer: str, at: int, reaction: str | None = None) -> bool:
        return await self._db.write(_view(story_id, viewer, at, reaction))

    async def viewers(self, story_id: str) -> list[View]:
        """Who viewed it, first viewer first."""
        rows = await self._db.fetch(
            "SELECT viewer_id, viewed_at, reaction, reacted_at FROM story_views"
            " WHERE story_id = ? ORDER BY viewed_at, viewer_id",
            (story_id,),
        )
        return [View(r[0], int(r[1]), r[2], None if r[3] is None else int(r[3])) for r in rows]

    async def audience_of(self, story_id: str) -> list[str]:
        rows = await self._db.fetch(
            "SELECT user_id FROM story_audience WHERE story_id = ?", (story_id,)
        )
        return [r[0] for r in rows]

    async def delete(self, story_id: str, author: str) -> list[str] | None:
        """Delete the author's story: None when it is not theirs, else the
        blob keys of its upload, now unused, for the blob store."""
        return await self._db.write(_delete(self._db.dialect, story_id, author))

    # ----- highlights ------------------------------------------------------------

    async def add_highlight(
        self, owner: str, highlight_id: str, name: str, story_ids: Sequence[str], at: int
    ) -> None:
        ids = list(dict.fromkeys(story_ids))
        await self._db.write(_highlight(owner, highlight_id, name, ids, at))

    async def highlights(self, owner: str, reader: str) -> list[Highlight]:
        """``owner``'s highlights with the stories ``reader`` may see in them
        (each story's original audience); empty highlights are left out for
        anyone but the owner."""
        heads = await self._db.fetch(
            "SELECT id, name, created_at FROM story_highlights WHERE owner_id = ?"
            " ORDER BY created_at, id",
            (owner,),
        )
        items = await self._db.fetch(
            "SELECT i.highlight_id, s.id FROM story_highlight_items i"
            " JOIN story_highlights h ON h.id = i.highlight_id"
            " JOIN stories s ON s.id = i.story_id"
            f" WHERE h.owner_id = ? AND {_VISIBLE} ORDER BY s.created_at, s.id",
            (owner, *_visible_params(reader)),
        )
        out = []
        for hid, name, created in heads:
            ids = tuple(r[1] for r in items if r[0] == hid)
            if ids or owner == reader:
                out.append(Highlight(hid, owner, name, int(created), ids))
        return out

    async def delete_highlight(self, owner: str, highlight_id: str) -> bool:
        count = await self._db.execute(
            "DELETE FROM story_highlights WHERE id = ? AND owner_id = ?", (highlight_id, owner)
        )
        return bool(count)

    # ----- expiry ------------------------------------------------------------------

    async def forget_expired(self, now: int, limit: int = 500) -> list[str]:
        """Delete up to ``limit`` expired, unhighlighted stories; the blob keys
        of their uploads that nothing else uses."""
        return await self._db.write(_forget(self._db.dialect, now, limit))

    async def has_expired(self, now: int) -> bool:
        """Whether an expired story no highlight keeps is still stored."""
        found = await self._db.fetchval(
            "SELECT 1 FROM stories s WHERE s.expires_at <= ? AND NOT EXISTS"
            " (SELECT 1 FROM story_highlight_items i WHERE i.story_id = s.id) LIMIT 1",
            (now,),
        )
        return found is not None

    async def next_expiry(self) -> int | None:
        found = await self._db.fetchval(
            "SELECT MIN(s.expires_at) FROM stories s WHERE NOT EXISTS"
            " (SELECT 1 FROM story_highlight_items i WHERE i.story_id = s.id)"
        )
        return None if found is None else int(found)


def story_store(store: Store) -> StoryStore:
    return StoryStore(store.db)
