"""The authorization server's SQL stores racing across processes, on SQLite and
PostgreSQL: each Database below is a separate engine, as a separate process would
have. The contracts themselves: tests/store/test_*_contract.py."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bastion.oauth.codes import code_hash
from bastion.store.sql.database import Database
from bastion.store.sql.grants import SqlGrantStore
from tests.store.test_grant_contract import NOW, family, grant, issued


async def test_a_code_is_consumed_exactly_once_under_concurrency(database_url: str) -> None:
    """RFC 6749 §4.1.2: single use; of parallel redemptions at most one succeeds."""
    setup = Database(database_url)
    await setup.upgrade()
    await SqlGrantStore(setup).save_code(grant())
    # Separate engines, as separate processes would have.
    databases = [Database(database_url) for _ in range(8)]
    try:
        results = await asyncio.gather(
            *(SqlGrantStore(db).consume_code(code_hash("c"), NOW + 1) for db in databases)
        )
        assert [won for _, won in results].count(True) == 1
        assert all(found is not None and found.consumed_at is not None for found, _ in results)
        missing, won = await SqlGrantStore(setup).consume_code(code_hash("nope"), NOW)
        assert (missing, won) == (None, False)
    finally:
        for db in [setup, *databases]:
            await db.close()


async def test_a_family_advances_once_per_generation_under_concurrency(
    database_url: str,
) -> None:
    setup = Database(database_url)
    await setup.upgrade()
    created = family()
    await SqlGrantStore(setup).create_family(created)
    databases = [Database(database_url) for _ in range(8)]
    try:
        wins = await asyncio.gather(
            *(
                SqlGrantStore(db).rotate_family(
                    created.family_id,
                    0,
                    NOW + 1,
                    f"fp{i}",
                    issued(f"r{i}", family_id=created.family_id),
                )
                for i, db in enumerate(databases)
            )
        )
        assert wins.count(True) == 1
        stored = await SqlGrantStore(setup).get_family(created.family_id)
        assert stored is not None
        assert stored.generation == 1
        assert stored == replace(
            created,
            generation=1,
            rotated_at=NOW + 1,
            last_used_at=NOW + 1,
            rotated_by=f"fp{wins.index(True)}",
        ), "the winner's instance is the one recorded"
    finally:
        for db in [setup, *databases]:
            await db.close()
