"""Opening, migrating, reopening and the odd input, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from storage.base import MigrationReport, Room, RoomMember, StoredMessage, User, new_id, now_ms
from storage.errors import MigrationError, StoreError
from storage.sql import migrate
from storage.sql.factory import open_store

TIMEOUT = 20
ALL_MIGRATIONS = [name for name, _ in migrate.migration_files("sqlite")]
HOSTILE = "'); DROP TABLE messages;--"


def test_both_dialects_have_the_same_migrations_in_the_same_order() -> None:
    postgres = [name for name, _ in migrate.migration_files("postgres")]
    assert ALL_MIGRATIONS == postgres
    assert ALL_MIGRATIONS[0] == "0001_init.sql"


async def test_migrations_apply_once(empty_database_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_store(empty_database_url) as store:
            first = await store.migrate()
            second = await store.migrate()
            await store.ping()
        assert first == MigrationReport(applied=ALL_MIGRATIONS, already=[])
        assert second == MigrationReport(applied=[], already=ALL_MIGRATIONS)
        async with open_store(empty_database_url) as store:
            assert (await store.migrate()).applied == []


async def test_concurrent_starts_apply_each_migration_once(empty_database_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        reports: list[MigrationReport] = []

        async def start() -> None:
            async with open_store(empty_database_url) as store:
                reports.append(await store.migrate())

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(start)
        # Starts may share the work (one applies the first files, another the
        # rest), but every migration is applied exactly once.
        applied = [name for r in reports for name in r.applied]
        assert sorted(applied) == ALL_MIGRATIONS


async def test_edited_migration_is_refused(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_store(empty_database_url) as store:
            await store.migrate()
            original = migrate.migration_files

            def edited(dialect: str) -> list[tuple[str, str]]:
                return [(name, sql + "\n-- an edit\n") for name, sql in original(dialect)]

            monkeypatch.setattr(migrate, "migration_files", edited)
            with pytest.raises(MigrationError, match="edited"):
                await store.migrate()


async def test_failed_migration_leaves_no_trace(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_store(empty_database_url) as store:
            await store.migrate()
            original = migrate.migration_files
            broken = "CREATE TABLE half_done (x INTEGER);\nTHIS IS NOT SQL;\n"

            def with_broken(dialect: str) -> list[tuple[str, str]]:
                return original(dialect) + [("9999_broken.sql", broken)]

            monkeypatch.setattr(migrate, "migration_files", with_broken)
            with pytest.raises(MigrationError):
                await store.migrate()
            fixed = "CREATE TABLE half_done (x INTEGER);"
            monkeypatch.setattr(
                migrate, "migration_files", lambda d: original(d) + [("9999_broken.sql", fixed)]
            )
            # Had the first statement of the broken file stuck, this would fail.
            report = await store.migrate()
            assert report.applied == ["9999_broken.sql"]


async def test_data_survives_reopening(database_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        alice = User(new_id("u_"), "a@example.com", "alice", "Alice", "hash", now_ms())
        owner = (RoomMember(alice.id, "owner"),)
        room = Room(new_id("r_"), "group", "g", alice.id, now_ms(), owner)
        message = StoredMessage(new_id("m_"), room.id, 1, alice.id, "c1", "kept", now_ms())
        async with open_store(database_url) as store:
            await store.migrate()
            await store.create_user(alice)
            await store.create_room(room)
            await store.insert_messages([message])

        async with open_store(database_url) as store:
            assert (await store.migrate()).applied == []
            assert await store.get_user_by_login("ALICE") == alice
            assert await store.get_room(room.id) == room
            assert await store.messages_after(room.id, 0, 10) == [message]
            assert await store.last_seq(room.id) == 1


async def test_sql_looking_text_is_stored_verbatim(database_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_store(database_url) as store:
            await store.migrate()
            name = HOSTILE + " \u2603 \U0001f600 \\ %s $1 ?"
            odd = User(new_id("u_"), HOSTILE + "@x.com", HOSTILE, name, "h", 1)
            await store.create_user(odd)
            room = Room(new_id("r_"), "group", HOSTILE, odd.id, 1, (RoomMember(odd.id, "owner"),))
            await store.create_room(room)
            message = StoredMessage(new_id("m_"), room.id, 1, odd.id, HOSTILE, HOSTILE, 2)
            await store.insert_messages([message])

            assert await store.get_user_by_login(HOSTILE) == odd
            assert await store.get_user(odd.id) == odd
            assert await store.messages_after(room.id, 0, 10) == [message]
            assert await store.find_by_cids(room.id, [(odd.id, HOSTILE)]) == {
                (odd.id, HOSTILE): message
            }
            (summary,) = await store.list_rooms(odd.id, limit=5, offset=0)
            assert summary.room.name == HOSTILE


async def test_closed_store_refuses_calls(database_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_store(database_url) as store:
            await store.migrate()
        with pytest.raises(StoreError):
            await store.ping()
        await store.aclose()  # closing twice is harmless


async def test_sqlite_creates_parent_directory(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        path = tmp_path / "deep" / "er" / "t.db"
        async with open_store(f"sqlite:///{path}") as store:
            assert store.backend == "sqlite"
            await store.migrate()
        assert path.is_file()


async def test_sqlite_refuses_in_memory_and_bad_synchronous(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="in-memory"):
        async with open_store("sqlite:///:memory:"):
            pass
    with pytest.raises(ValueError, match="synchronous"):
        async with open_store(f"sqlite:///{tmp_path}/t.db", sqlite_synchronous="SOMETIMES"):
            pass


async def test_unknown_database_url_scheme() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL"):
        async with open_store("mysql://user:secret@host/db"):
            pass


async def test_unreachable_postgres_is_a_store_error() -> None:
    with trio.fail_after(TIMEOUT):
        # Port 1 on loopback: nothing listens, the connect is refused at once.
        with pytest.raises(StoreError, match="cannot connect"):
            async with open_store("postgresql://postgres@127.0.0.1:1/test"):
                pass


async def test_errors_leave_the_store_block_unwrapped(database_url: str) -> None:
    # PostgreSQL's asyncio bridge runs nurseries; callers must not see that.
    with trio.fail_after(TIMEOUT):
        with pytest.raises(KeyError):
            async with open_store(database_url):
                raise KeyError("from the body")
