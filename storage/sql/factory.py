"""Pick the ``Store`` twin from a DATABASE_URL.

- ``sqlite:///<path>``: everything after the third slash is the file path,
  so ``sqlite:///data/x.db`` is relative to the working directory and
  ``sqlite:////var/lib/x.db`` is absolute.
- ``postgresql://...`` or ``postgres://...``: passed to asyncpg unchanged.

Migrations are not run here: start-up and the migrate command decide when
(``await store.migrate()``), and a read-only tool may not want them at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from storage.base import Store
from storage.sql.database import Database
from storage.sql.store import SqlStore

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


@asynccontextmanager
async def open_store(
    database_url: str, *, sqlite_synchronous: str = "FULL"
) -> AsyncIterator[Store]:
    # Backends are imported lazily so a SQLite install never loads asyncpg or
    # trio-asyncio (which patches asyncio's loop policy on import).
    if database_url.startswith(SQLITE_PREFIX):
        from storage.sql.driver_sqlite import open_sqlite_driver

        path = database_url[len(SQLITE_PREFIX) :]
        async with open_sqlite_driver(path, synchronous=sqlite_synchronous) as driver:
            yield SqlStore(Database(driver))
    elif database_url.startswith(POSTGRES_PREFIXES):
        from storage.sql.driver_postgres import open_postgres_driver

        async with (
            open_postgres_driver(database_url) as pg_driver,
            pg_driver.dedicated() as messages_driver,
            pg_driver.dedicated() as lease_driver,
        ):
            yield SqlStore(
                Database(pg_driver),
                messages_db=Database(messages_driver),
                lease_db=Database(lease_driver),
            )
    else:
        raise ValueError(
            "DATABASE_URL must start with sqlite:///, postgresql:// or postgres://,"
            f" got {database_url.split(':', 1)[0]!r}:..."
        )
