"""What a storage operation asks of a database, as plain values (sans-I/O).

An operation that needs more than one statement, or a consistent snapshot,
is written once as a generator that yields statements and receives their
results::

    def load_room(room_id: str) -> Op[Room | None]:
        row = yield FetchOne("SELECT ... FROM rooms WHERE id = ?", (room_id,))
        if row is None:
            return None
        members = yield Fetch("SELECT ... FROM room_members WHERE room_id = ?", (room_id,))
        return room_from_row(row, ...)

and a driver (``storage.sql.driver_sqlite``, ``storage.sql.driver_postgres``) runs it
inside one transaction: in SQLite's storage thread, or in one crossing into
PostgreSQL's driver. The generator never sees a connection, a thread or an
``await``, so the same code runs on both, and a transaction can never span a
trio checkpoint.

SQL uses ``?`` placeholders; the PostgreSQL dialect rewrites them to ``$n``.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# A row is a tuple on SQLite and an asyncpg Record on PostgreSQL: both index,
# unpack and len() the same way, which is all domain code may rely on.
Row = Sequence[Any]
Params = Sequence[Any]


@dataclass(frozen=True, slots=True)
class Fetch:
    """All rows of a query (or of an INSERT/UPDATE ... RETURNING)."""

    sql: str
    params: Params = ()


@dataclass(frozen=True, slots=True)
class FetchOne:
    """The first row, or None."""

    sql: str
    params: Params = ()


@dataclass(frozen=True, slots=True)
class Execute:
    """A statement without rows; the result is the number of rows it changed."""

    sql: str
    params: Params = ()


@dataclass(frozen=True, slots=True)
class ExecuteMany:
    """One statement for each parameter row; the result is None."""

    sql: str
    rows: Sequence[Params]


@dataclass(frozen=True, slots=True)
class Script:
    """Several statements without parameters (migrations); the result is None.

    ``timeout`` lifts the driver's everyday statement limit: migrations may
    rewrite big tables or wait for another node's migration.
    """

    sql: str
    timeout: float | None = None


Statement = Fetch | FetchOne | Execute | ExecuteMany | Script

# The generator's send type is the statement's result; it differs per
# statement, so it is Any here and the domain code names the type it expects.
Op = Generator[Statement, Any, T]


def single(statement: Statement) -> Op[Any]:
    """An operation of one statement (the common case: no generator to write)."""
    result = yield statement
    return result
