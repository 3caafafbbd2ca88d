"""Apply ``storage/migrations/<dialect>/*.sql`` in name order, once each.

Rules:
- Each file runs in its own transaction together with the row that records
  it in ``schema_migrations``: a file is either fully applied and recorded, or
  not at all, so a crash mid-migration is retried cleanly on next start.
- Applied files are never edited (add ``0002_*.sql`` instead). The recorded
  checksum turns an accidental edit into a ``MigrationError`` at start-up
  rather than a silent schema drift between installs.
- Several nodes may start at once: on PostgreSQL every migration transaction
  first takes an advisory lock (per schema), on SQLite ``BEGIN IMMEDIATE``
  takes the database write lock, so the "already applied?" check and the
  apply cannot interleave.

Run by ``Store.migrate()`` at start-up, or by hand:
``python -m storage.sql.migrate [DATABASE_URL]``.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import sys
from importlib import resources

from storage.base import MigrationReport, now_ms
from storage.errors import MigrationError, StoreError
from storage.sql.database import Database
from storage.sql.statements import Execute, FetchOne, Op, Script

DIALECTS = ("sqlite", "postgres")
_NAME = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")

# Both dialects take these types (SQLite's INTEGER is 64-bit, like bigint).
_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       TEXT PRIMARY KEY,
    checksum   TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)"""

# Keyed by schema so test schemas (one per test) and real deployments sharing
# a database do not serialise each other's start-up.
# Migrations may rewrite big tables and may wait for another node's; the
# pool's everyday command timeout is far too short for that.
_TIMEOUT = 3600.0

_POSTGRES_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtext('storage.sql.migrate:' || current_schema()))"
)


def migration_files(dialect: str) -> list[tuple[str, str]]:
    """(name, sql) of the dialect's migrations, sorted by name."""
    if dialect not in DIALECTS:
        raise MigrationError(f"unknown dialect {dialect!r}")
    folder = resources.files("storage") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        if not _NAME.match(entry.name):
            # A typo'd name would otherwise sort somewhere surprising or be skipped.
            raise MigrationError(f"migration file name {entry.name!r} is not NNNN_name.sql")
        found.append((entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def checksum(sql: str) -> str:
    # Line endings are normalised so a Windows checkout is not "an edit".
    return hashlib.sha256(sql.replace("\r\n", "\n").encode()).hexdigest()


def _check_unchanged(name: str, sql: str, recorded: str) -> None:
    if recorded != checksum(sql):
        raise MigrationError(
            f"migration {name} was edited after it was applied; "
            "revert the edit and put the change in a new migration file"
        )


def split_sqlite_script(sql: str) -> list[str]:
    """Split a script into statements for ``Connection.execute``.

    ``executescript`` would be simpler but it COMMITs any open transaction
    first, which would break "one file, one transaction". ``complete_statement``
    understands quotes and ``CREATE TRIGGER ... BEGIN ... END;`` bodies.
    """
    statements: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        # Only a trailing comment may be left over; executing it is a no-op,
        # and executing a real unterminated statement raises, which we want.
        statements.append(pending.strip())
    return statements


def _apply(dialect: str, name: str, sql: str) -> Op[bool]:
    """One file and its record, in one transaction; False if it was applied before."""
    if dialect == "postgres":
        # Taken first, so the "already applied?" check and the apply cannot
        # interleave with another node's.
        yield Script(_POSTGRES_LOCK, timeout=_TIMEOUT)
    # SQLite needs no lock statement: the write transaction is BEGIN
    # IMMEDIATE, which takes the database write lock before the check.
    row = yield FetchOne("SELECT checksum FROM schema_migrations WHERE name = ?", (name,))
    if row is not None:
        _check_unchanged(name, sql, row[0])
        return False
    yield Script(sql, timeout=_TIMEOUT)
    yield Execute(
        "INSERT INTO schema_migrations (name, checksum, applied_at) VALUES (?, ?, ?)",
        (name, checksum(sql), now_ms()),
    )
    return True


def _create_table(dialect: str) -> Op[None]:
    if dialect == "postgres":
        # CREATE TABLE IF NOT EXISTS is not safe against a concurrent creator
        # (duplicate pg_type row), hence the lock here too.
        yield Script(_POSTGRES_LOCK, timeout=_TIMEOUT)
    yield Script(_TABLE)


async def migrate(db: Database) -> MigrationReport:
    """Apply what is missing, one file per transaction, in name order."""
    dialect = db.backend
    report = MigrationReport()
    try:
        await db.write(_create_table(dialect))
        for name, sql in migration_files(dialect):
            if await db.write(_apply(dialect, name, sql)):
                report.applied.append(name)
            else:
                report.already.append(name)
    except MigrationError:
        raise
    except StoreError as exc:
        raise MigrationError(f"{dialect} migration failed: {exc}") from exc
    return report


async def _main(database_url: str) -> None:
    from storage.sql.factory import open_store

    async with open_store(database_url) as store:
        report = await store.migrate()
    for name in report.applied:
        print(f"applied  {name}")
    for name in report.already:
        print(f"already  {name}")


def main(argv: list[str] | None = None) -> int:
    import os

    import trio

    args = sys.argv[1:] if argv is None else argv
    url = args[0] if args else os.environ.get("DATABASE_URL", "sqlite:///data/realtime.db")
    try:
        trio.run(_main, url)
    except StoreError as exc:  # MigrationError, or the database is unreachable
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
