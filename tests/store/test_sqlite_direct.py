"""The direct SQLite connection of the token endpoint's path (``store/sql/direct.py``):
durability setting, waiting for a lock held elsewhere without stalling the event loop,
and never creating a database file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from bastion.authserver.stores import IssuedToken
from bastion.errors import StoreUnavailable
from bastion.store.sql import direct as direct_module
from bastion.store.sql.database import Database
from bastion.store.sql.grants import SqlGrantStore
from tests.store.test_grant_contract import NOW, family, grant

# PRAGMA synchronous answers with a number: 1 is NORMAL, 2 is FULL.
LEVELS = {"normal": 1, "full": 2}


async def _migrated(path: Path, **options: object) -> Database:
    database = Database(f"sqlite+aiosqlite:///{path}", **options)  # type: ignore[arg-type]
    await database.upgrade()
    return database


@pytest.mark.parametrize("synchronous", ["normal", "full"])
async def test_every_connection_uses_the_configured_durability(
    tmp_path: Path, synchronous: str
) -> None:
    database = await _migrated(tmp_path / "b.db", synchronous=synchronous)
    try:
        direct = database.direct
        assert direct is not None
        level = await direct.read(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0])
        assert level == LEVELS[synchronous]
        async with database.connect() as conn:
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == LEVELS[synchronous]
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        # Writes work either way (FULL ones run on the writer thread).
        store = SqlGrantStore(database)
        await store.save_code(grant())
        assert (await store.consume_code(grant().code_hash, NOW))[1] is True
    finally:
        await database.close()


async def test_the_default_is_normal(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    assert database.synchronous == "normal"
    await database.close()


@pytest.mark.parametrize("synchronous", ["normal", "full"])
async def test_a_write_waits_for_a_lock_held_elsewhere_without_stalling_the_loop(
    tmp_path: Path, synchronous: str
) -> None:
    path = tmp_path / "b.db"
    database = await _migrated(path, synchronous=synchronous)
    store = SqlGrantStore(database)
    created = family()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        await store.create_family(created)
        other.execute("BEGIN IMMEDIATE")  # another process, a migration, `db prune`...
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
        assert await store.rotate_family(created.family_id, 0, NOW, "fp", _token(created.family_id))
        ticker.cancel()
        assert not other.in_transaction  # it could only finish once the lock was free
        assert ticks >= 10  # the loop kept serving while the write waited
        stored = await store.get_family(created.family_id)
        assert stored is not None
        assert stored.generation == 1
    finally:
        other.close()
        await database.close()


async def test_a_lock_held_past_the_timeout_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    database = await _migrated(path, connect_timeout=0.2)
    store = SqlGrantStore(database)
    await store.save_code(grant())
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable):
            await store.consume_code(grant().code_hash, NOW)
        other.execute("ROLLBACK")
        assert (await store.consume_code(grant().code_hash, NOW))[1] is True
    finally:
        other.close()
        await database.close()


async def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    database = await _migrated(tmp_path / "b.db")
    try:
        direct = database.direct
        assert direct is not None

        def half_then_fail(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO users (user_id, username, enabled, created_at,"
                " tokens_valid_after) VALUES ('u', 'x', 1, 0, 0)"
            )
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await direct.write(half_then_fail)
        count = await direct.read(
            lambda conn: conn.execute("SELECT count(*) FROM users").fetchone()[0]
        )
        assert count == 0
    finally:
        await database.close()


async def test_no_file_is_created_through_the_direct_connection(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    database = Database(f"sqlite+aiosqlite:///{path}", create=False)
    assert database.direct is None
    await database.close()
    assert not path.exists()


def _token(family_id: str) -> IssuedToken:

    return IssuedToken("jti-direct", "app", "u1", NOW + 300, family_id)


async def test_a_file_that_is_no_database_is_store_unavailable(tmp_path: Path) -> None:
    """A damaged file answers 503 through StoreUnavailable (docs/security-model.md, stores
    fail closed), never a driver exception that would reach the client as a 500."""
    database = await _migrated(tmp_path / "b.db")
    try:
        direct = database.direct
        assert direct is not None
        await database.engine.dispose()
        (tmp_path / "b.db").write_bytes(b"not an SQLite file" * 512)
        for suffix in ("-wal", "-shm"):
            (tmp_path / f"b.db{suffix}").unlink(missing_ok=True)
        store = SqlGrantStore(database)
        with pytest.raises(StoreUnavailable):
            await store.get_family(family().family_id)
        with pytest.raises(StoreUnavailable):
            await store.consume_code(grant().code_hash, NOW)
    finally:
        await database.close()


async def test_the_log_starts_over_while_readers_keep_coming(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers that keep coming keep SQLite from starting the log over on its own
    (https://sqlite.org/wal.html, "Avoiding Excessively Large WAL Files"), and SQLite
    never gives the file's space back by itself: the checkpoint must restart and
    truncate it, or the file only grows."""
    monkeypatch.setattr(direct_module, "CHECKPOINT_EVERY", 20)
    monkeypatch.setattr(direct_module, "RESTART_FRAMES", 100)
    path = tmp_path / "b.db"
    database = await _migrated(path)
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        direct = database.direct
        assert direct is not None
        await direct.write(lambda conn: conn.execute("CREATE TABLE filler (data BLOB)"))
        wal = path.with_name(path.name + "-wal")
        largest, restarted, written = 0, False, 0
        # Until the file is seen to shrink: one truncation is the point, and a busy
        # machine may take more writes to get one (each checkpoint waits a bounded time
        # for the readers). Every other write has a reader holding a snapshot across it;
        # without the checkpoint's truncation the file only grows, whatever the count.
        while not restarted and written < 3000:
            written += 1
            held = written % 2 == 1
            if held:
                reader.execute("BEGIN")
                reader.execute("SELECT count(*) FROM filler").fetchone()
            await direct.write(
                lambda conn: conn.execute("INSERT INTO filler VALUES (?)", (bytes(4096),))
            )
            if held:
                reader.execute("COMMIT")
            await asyncio.sleep(0)  # the checkpoint runs on the writer thread meanwhile
            size = wal.stat().st_size
            restarted = size < largest // 2
            largest = max(largest, size)
        assert restarted, f"the log grew to {largest} bytes over {written} writes"
    finally:
        reader.close()
        await database.close()
