"""The SQL store contract, run on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bastion.errors import SchemaNotCurrent, StoreUnavailable
from bastion.store.protocols import SigningKeyStore, StoredKey
from bastion.store.sql.database import Database
from tests.support.services import free_port


async def test_empty_database_is_not_current(database: Database) -> None:
    assert await database.current_revision() is None
    with pytest.raises(SchemaNotCurrent, match="bastion db upgrade"):
        await database.require_current_schema()


async def test_a_missing_sqlite_file_is_not_created_when_asked_not_to(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "bastion.db"
    database = Database(f"sqlite+aiosqlite:///{path}", create=False)
    try:
        assert database.missing
        assert await database.current_revision() is None
        with pytest.raises(SchemaNotCurrent, match=f"SQLite database {path} does not exist"):
            await database.require_current_schema()
        with pytest.raises(StoreUnavailable):
            await database.ping()
    finally:
        await database.close()
    assert not path.parent.exists()


async def test_schema_problems_name_the_database(database: Database) -> None:
    name = database.name
    assert database.schema_problem(None) == (
        f"{name} has no schema (never migrated); this Bastion needs revision "
        f"{database.head_revision()}: run `bastion db upgrade`"
    )
    first = database.pending_revisions(None)[0]
    assert f"{name} is at revision {first}, " in (database.schema_problem(first) or "")
    assert "does not know" in (database.schema_problem("9999") or "")
    assert database.schema_problem(database.head_revision()) is None
    assert "Hunter2pw" not in Database("postgresql+asyncpg://u:Hunter2pw@db/x").name


async def test_upgrade_reaches_head_and_is_idempotent(database: Database) -> None:
    steps: list[str] = []
    applied = await database.upgrade(steps.append)
    assert applied == steps
    assert applied[-1] == database.head_revision()
    assert await database.current_revision() == database.head_revision()
    await database.require_current_schema()
    assert await database.upgrade() == []


async def test_concurrent_upgrades_leave_one_schema(database_url: str) -> None:
    """Two processes starting `db upgrade` at once must not corrupt the schema."""
    first, second = Database(database_url), Database(database_url)
    try:
        results = await asyncio.gather(first.upgrade(), second.upgrade(), return_exceptions=True)
        everything = first.pending_revisions(None)
        assert sorted(map(str, results)) == sorted(["[]", str(everything)]), (
            "one migrates, the other finds it done"
        )
        await first.require_current_schema()
    finally:
        await first.close()
        await second.close()


def _row(kid: str, activates_at: float, sealed: bytes) -> StoredKey:
    return StoredKey(
        kid=kid,
        alg="ES256",
        created_at=1.5,
        activates_at=activates_at,
        retired_at=None,
        sealed_private_key=sealed,
    )


async def test_signing_key_rows_round_trip(signing_key_store: SigningKeyStore) -> None:
    store = signing_key_store
    sealed = os.urandom(200) + b"\x00\xff"
    await store.add_key(_row("b", 2_000_000_000.25, sealed))
    await store.add_key(_row("a", 1_000_000_000.75, b"x"))
    rows = await store.list_keys()
    assert [r.kid for r in rows] == ["a", "b"], "ordered by activation"
    assert rows[1].sealed_private_key == sealed
    assert rows[1].activates_at == 2_000_000_000.25
    await store.set_retired({"a": 1_500_000_000.5, "b": 2_500_000_000.0})
    retired = {r.kid: r.retired_at for r in await store.list_keys()}
    assert retired == {"a": 1_500_000_000.5, "b": 2_500_000_000.0}


async def test_unreachable_postgres_raises_store_unavailable(postgres_url: str) -> None:
    url = postgres_url.replace(":5432/", f":{free_port()}/")
    database = Database(url, connect_timeout=1)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await database.ping()
        assert caught.value.store == "database"
    finally:
        await database.close()


def test_safe_url_hides_passwords_everywhere() -> None:
    database = Database("postgresql+asyncpg://u:Hunter2pw@db/x?password=Hunter2pw")
    assert "Hunter2pw" not in database.safe_url


async def test_migrations_and_schema_module_agree(migrated: Database) -> None:
    """The migrations are frozen snapshots; the schema module must still describe them."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from bastion.store.sql.schema import metadata

    async with migrated.connect() as conn:
        differences = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
        )
    assert differences == []
