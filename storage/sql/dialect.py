"""The real differences between SQLite and PostgreSQL, in one object each.

Domain code is written once, in SQL both databases accept (SQLite 3.35+ has
``RETURNING`` and ``ON CONFLICT``; both take ``TRUE``/``FALSE``, ``COALESCE``,
``CAST(? AS TEXT)``), and asks its ``Dialect`` for the few fragments that
differ:

- a list parameter: ``d.in_list("id")`` with ``d.array(ids)`` is
  ``id IN (SELECT value FROM json_each(?))`` with a JSON text on SQLite and
  ``id = ANY(?::text[])`` with a list on PostgreSQL (no chunking, one
  statement text whatever the length, so it is prepared once);
- a table parameter: ``d.table(("sender_id", "cid"), ("text", "text"), rows)``;
- ``greatest``/``least`` of two values;
- ``for_update()``: lock the rows a write operation reads before deciding;
- which unique constraint a conflict broke (SQLite names columns,
  PostgreSQL names the constraint);
- locking inside a write transaction (``for_update``, ``xact_lock``), which
  SQLite never needs: its ``BEGIN IMMEDIATE`` already excludes every other
  writer;
- byte-wise text order (``bytewise``): SQLite's default; PostgreSQL's
  depends on the database collation unless told ``COLLATE "C"``;
- full-text search (``text_search``): SQLite's FTS5 table beside the
  content table, PostgreSQL's ``to_tsvector`` over an expression index;
- the hot-path bulk insert, which stays dialect-specific SQL on purpose
  (see ``storage.sql.store.insert_messages_op``).

Placeholders are ``?`` in domain SQL; ``postgres_placeholders`` rewrites
them to ``$1..$n`` once per statement text.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, Final

# SQLite's "UNIQUE constraint failed: <columns>" and PostgreSQL's constraint
# names, mapped to the field a ``Conflict`` reports. The names are fixed by
# the migrations.
_SQLITE_UNIQUE: Final[dict[str, str]] = {
    "users.email_lc": "email",
    "users.username_lc": "username",
    "users.id": "id",
    "messages.room_id, messages.seq": "seq",
    "messages.room_id, messages.sender_id, messages.cid": "cid",
    "messages.id": "id",
    "rooms.id": "id",
    "rooms.direct_key": "direct_key",
    "room_members.room_id, room_members.user_id": "member",
    "refresh_tokens.token_hash": "token",
}
_POSTGRES_UNIQUE: Final[dict[str, str]] = {
    "users_email_lc_key": "email",
    "users_username_lc_key": "username",
    "users_pkey": "id",
    "messages_room_seq_key": "seq",
    "messages_room_sender_cid_key": "cid",
    "messages_pkey": "id",
    "rooms_pkey": "id",
    "rooms_direct_key_key": "direct_key",
    "room_members_pkey": "member",
    "refresh_tokens_pkey": "token",
}


def register_unique(*, sqlite: dict[str, str], postgres: dict[str, str]) -> None:
    """A domain module names the ``Conflict`` fields of its own unique constraints."""
    _SQLITE_UNIQUE.update(sqlite)
    _POSTGRES_UNIQUE.update(postgres)


class Dialect(ABC):
    name: str

    @abstractmethod
    def in_list(self, expr: str, sql_type: str = "text") -> str:
        """``expr`` is one of a list given as ONE parameter (``array(values)``)."""
        ...

    @abstractmethod
    def array(self, values: Iterable[Any]) -> Any:
        """The parameter value for ``in_list`` / ``unnest``."""
        ...

    @abstractmethod
    def unnest(self, sql_type: str = "text") -> str:
        """A FROM source of one column ``value`` over ONE list parameter."""
        ...

    @abstractmethod
    def table(self, columns: Sequence[str], sql_types: Sequence[str]) -> str:
        """A FROM source with ``columns`` over the parameters of ``table_params``."""
        ...

    @abstractmethod
    def table_params(self, rows: Iterable[Sequence[Any]], width: int) -> tuple[Any, ...]: ...

    @abstractmethod
    def greatest(self, a: str, b: str) -> str: ...

    @abstractmethod
    def least(self, a: str, b: str) -> str: ...

    @abstractmethod
    def for_update(self) -> str:
        """Appended to a SELECT inside a write operation: keep the rows read
        locked to the end of the transaction, so a read-decide-write cannot
        act on a row another writer changes meanwhile."""
        ...

    @abstractmethod
    def conflict_field(self, detail: str) -> str:
        """The ``Conflict`` field for the driver's name of a broken constraint."""
        ...

    @abstractmethod
    def xact_lock(self) -> str | None:
        """A statement that locks the key (``int`` namespace, ``text`` key) until
        commit, for a key that may have no row to lock yet; None where the
        write transaction already excludes every other writer."""
        ...

    @abstractmethod
    def now_ms(self) -> str:
        """The database's own clock in ms since the epoch (leases: nodes' clocks may differ)."""

    @abstractmethod
    def bytewise(self, expr: str) -> str:
        """``expr`` compared, ordered and ``lower()``ed byte by byte (ASCII only)."""
        ...

    @abstractmethod
    def text_search(self, table: str, alias: str, terms: Sequence[str]) -> tuple[str, str, str]:
        """Full-text search over ``alias.text`` (``table AS alias`` in FROM):
        ``(join, rank, param)``. ``join`` follows ``FROM table alias``, keeps
        the rows matching every term and takes ONE parameter, ``param``;
        ``rank`` is an ORDER BY item, best match first. Terms are plain text:
        no search syntax in user input takes effect."""
        ...


class SqliteDialect(Dialect):
    name = "sqlite"

    def in_list(self, expr: str, sql_type: str = "text") -> str:
        return f"{expr} IN (SELECT value FROM json_each(?))"

    def array(self, values: Iterable[Any]) -> str:
        return json.dumps(list(values), separators=(",", ":"))

    def unnest(self, sql_type: str = "text") -> str:
        return "(SELECT value FROM json_each(?))"

    def table(self, columns: Sequence[str], sql_types: Sequence[str]) -> str:
        picks = ", ".join(f"value ->> {i} AS {c}" for i, c in enumerate(columns))
        return f"(SELECT {picks} FROM json_each(?))"

    def table_params(self, rows: Iterable[Sequence[Any]], width: int) -> tuple[Any, ...]:
        return (json.dumps([list(r) for r in rows], separators=(",", ":")),)

    def greatest(self, a: str, b: str) -> str:
        return f"MAX({a}, {b})"

    def least(self, a: str, b: str) -> str:
        return f"MIN({a}, {b})"

    def for_update(self) -> str:
        # A write transaction (BEGIN IMMEDIATE) already holds the database's
        # one write lock; SQLite has no row locks and no FOR UPDATE.
        return ""

    def conflict_field(self, detail: str) -> str:
        return _SQLITE_UNIQUE.get(detail, detail)

    def xact_lock(self) -> str | None:
        return None

    def now_ms(self) -> str:
        return "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"

    def bytewise(self, expr: str) -> str:
        return expr  # BINARY is the default collation

    def text_search(self, table: str, alias: str, terms: Sequence[str]) -> tuple[str, str, str]:
        # An FTS5 table ``<table>_fts`` with external content (the rowids of
        # ``table``), kept in step by triggers (migration 0005). Each term is
        # quoted, so FTS5 syntax in user input (NEAR, *, -, ") is text.
        fts = f"{table}_fts"
        join = f"JOIN {fts} ON {fts}.rowid = {alias}.rowid AND {fts} MATCH ?"
        return join, f"bm25({fts})", " ".join('"' + t.replace('"', '""') + '"' for t in terms)


class PostgresDialect(Dialect):
    name = "postgres"

    def in_list(self, expr: str, sql_type: str = "text") -> str:
        return f"{expr} = ANY(?::{sql_type}[])"

    def array(self, values: Iterable[Any]) -> list[Any]:
        return list(values)

    def unnest(self, sql_type: str = "text") -> str:
        return f"unnest(?::{sql_type}[]) AS u(value)"

    def table(self, columns: Sequence[str], sql_types: Sequence[str]) -> str:
        arrays = ", ".join(f"?::{t}[]" for t in sql_types)
        return f"unnest({arrays}) AS t({', '.join(columns)})"

    def table_params(self, rows: Iterable[Sequence[Any]], width: int) -> tuple[Any, ...]:
        columns: tuple[list[Any], ...] = tuple([] for _ in range(width))
        for row in rows:
            for i, value in enumerate(row):
                columns[i].append(value)
        return columns

    def greatest(self, a: str, b: str) -> str:
        return f"GREATEST({a}, {b})"

    def least(self, a: str, b: str) -> str:
        return f"LEAST({a}, {b})"

    def for_update(self) -> str:
        return " FOR UPDATE"

    def conflict_field(self, detail: str) -> str:
        return _POSTGRES_UNIQUE.get(detail, detail)

    def xact_lock(self) -> str | None:
        return "SELECT pg_advisory_xact_lock(?, hashtext(?))"

    def now_ms(self) -> str:
        return "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

    def bytewise(self, expr: str) -> str:
        return f'{expr} COLLATE "C"'

    def text_search(self, table: str, alias: str, terms: Sequence[str]) -> tuple[str, str, str]:
        # 'simple' (no stemming) matches SQLite FTS5's unicode61 tokenizer, and
        # is the expression the GIN index of migration 0005 is built on.
        vector = f"to_tsvector('simple', {alias}.text)"
        q = f"{alias}_q"
        join = f"JOIN plainto_tsquery('simple', ?) AS {q} ON {vector} @@ {q}"
        return join, f"ts_rank({vector}, {q}) DESC", " ".join(terms)


SQLITE: Final = SqliteDialect()
POSTGRES: Final = PostgresDialect()


@lru_cache(maxsize=4096)
def postgres_placeholders(sql: str) -> str:
    """``?`` -> ``$1, $2, ...``, outside quoted strings, identifiers and comments.

    Cached: domain SQL is a fixed set of texts, so the scan runs once per text.
    """
    out: list[str] = []
    n = 0
    i = 0
    length = len(sql)
    while i < length:
        ch = sql[i]
        if ch in "'\"":
            end = sql.find(ch, i + 1)
            # A doubled quote inside a literal is an escaped quote; keep scanning.
            while end != -1 and end + 1 < length and sql[end + 1] == ch:
                end = sql.find(ch, end + 2)
            end = length - 1 if end == -1 else end
            out.append(sql[i : end + 1])
            i = end + 1
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = length if end == -1 else end
            out.append(sql[i:end])
            i = end
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)
