"""The direct SQLite connection of the token endpoint's path (``store/sql/direct.py``):
durability setting, waiting for a lock held elsewhere without stalling the event loop,
and never creating a database file."""

from __future__ import annotations

import asyncio
import sqlite3
import struct
from pathlib import Path

import pytest
from sqlalchemy import text

from bastion.authserver.stores import IssuedToken
from bastion.errors import StoreUnavailable
from bastion.store.sql import direct as direct_module
from bastion.store.sql.database import Database
from bastion.store.sql.direct import DirectSqlite
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


def _log_frames(path: Path) -> int:
    """The frames in the database's log (``mxFrame``), from the wal-index header at the
    start of its ``-shm`` file: SQLite's ``WalIndexHdr`` (wal.c) holds it as a u32 at
    byte 16, in the machine's byte order. A restarted log keeps its file's size, so the
    file's size cannot tell a restart; this number drops back when the log starts over."""
    with path.with_name(path.name + "-shm").open("rb") as shm:
        shm.seek(16)
        frames: int = struct.unpack("=I", shm.read(4))[0]
    return frames


def _hold_snapshot(reader: sqlite3.Connection) -> None:
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM filler").fetchone()


def _release_snapshot(reader: sqlite3.Connection) -> None:
    if reader.in_transaction:
        reader.execute("COMMIT")


async def _write_page(direct: DirectSqlite) -> None:
    await direct.write(lambda conn: conn.execute("INSERT INTO filler VALUES (?)", (bytes(4096),)))


async def test_the_log_starts_over_while_readers_keep_coming(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers that keep coming keep SQLite from starting the log over on its own
    (https://sqlite.org/wal.html, "Avoiding Excessively Large WAL Files"): the checkpoint
    must restart it, or the log only grows.

    Two readers take turns, as the server's connections do: each takes a snapshot before
    the other lets its own go, so every write begins with a reader on the log, and the
    writer never finds the log free to start over. The turns go on while a write waits
    (the restart holds the write lock), so the restart's bounded wait finds a moment
    without readers on the log."""
    monkeypatch.setattr(direct_module, "CHECKPOINT_EVERY", 20)
    monkeypatch.setattr(direct_module, "RESTART_FRAMES", 100)
    path = tmp_path / "b.db"
    database = await _migrated(path)
    readers = [sqlite3.connect(path, isolation_level=None) for _ in range(2)]
    reading = True

    async def keep_reading() -> None:
        turn = 0
        while reading:
            # One turn between two writes; many while a write waits for the lock.
            _hold_snapshot(readers[turn % 2])
            _release_snapshot(readers[(turn + 1) % 2])
            turn += 1
            await asyncio.sleep(0)

    try:
        direct = database.direct
        assert direct is not None
        await direct.write(lambda conn: conn.execute("CREATE TABLE filler (data BLOB)"))
        turns = asyncio.create_task(keep_reading())
        largest, frames, written = 0, 0, 0
        # Until the log is seen to start over: one restart is the point, and a busy
        # machine may take more writes to get one (each checkpoint waits a bounded time
        # for the readers). Without the checkpoint's restart the log only grows.
        while frames >= largest and written < 3000:
            await _write_page(direct)
            written += 1
            await asyncio.sleep(0)  # the readers' turn
            largest, frames = max(largest, frames), _log_frames(path)
        reading = False
        await turns
        assert frames < largest, f"the log grew to {frames} frames over {written} writes"
        # It started over after growing past RESTART_FRAMES: the checkpoint's restart,
        # not SQLite finding the log free by itself.
        assert largest >= direct_module.RESTART_FRAMES
    finally:
        reading = False
        for reader in readers:
            reader.close()
        await database.close()


async def test_a_restarted_log_is_cut_back_to_the_size_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restarted log keeps its file's size; after a reader held the log long enough to
    make it grow, the first commit in the restarted log cuts the file back to
    ``journal_size_limit`` (set on every connection, direct or through SQLAlchemy)."""
    monkeypatch.setattr(direct_module, "CHECKPOINT_EVERY", 20)
    monkeypatch.setattr(direct_module, "RESTART_FRAMES", 100)
    path = tmp_path / "b.db"
    database = await _migrated(path)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        direct = database.direct
        assert direct is not None
        await direct.write(lambda conn: conn.execute("CREATE TABLE filler (data BLOB)"))
        page_size = await direct.read(lambda conn: conn.execute("PRAGMA page_size").fetchone()[0])
        limit = direct_module.wal_size_limit(page_size)
        assert limit == 32 + 4 * 100 * (24 + page_size)
        assert (
            await direct.read(lambda conn: conn.execute("PRAGMA journal_size_limit").fetchone()[0])
            == limit
        )
        async with database.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_size_limit"))).scalar() == limit
        wal = path.with_name(path.name + "-wal")
        # One reader holds its snapshot throughout: no restart can succeed.
        _hold_snapshot(reader)
        while wal.stat().st_size <= 2 * limit:
            await _write_page(direct)
        grown = _log_frames(path)
        _release_snapshot(reader)
        written = 0
        while _log_frames(path) >= grown and written < 1000:
            await _write_page(direct)
            written += 1
            await asyncio.sleep(0)  # the checkpoint runs on the writer thread meanwhile
        assert _log_frames(path) < grown, f"no restart over {written} writes"
        assert wal.stat().st_size <= limit
    finally:
        reader.close()
        await database.close()
