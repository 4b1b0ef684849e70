"""The token endpoint's statements on PostgreSQL through asyncpg directly
(``store/sql/direct_postgres.py``), on a real server: the races between processes (each
``Database`` here has its own pool, as each worker has), and losing the server.
The stores' contracts, which run on this path too: tests/store/test_*_contract.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from bastion.authserver.stores import Issuance
from bastion.errors import StoreUnavailable
from bastion.oauth.codes import CodeGrant, code_hash
from bastion.store.sql.database import Database
from bastion.store.sql.direct_postgres import Statement
from bastion.store.sql.grants import SqlGrantStore
from bastion.store.sql.users import SqlUserStore
from tests.store.test_grant_contract import NOW, family, grant, issued
from tests.support.tcpproxy import TcpProxy, via


def test_named_parameters_are_numbered_once_each() -> None:
    statement = Statement.of("SELECT :a, CAST(:b AS text), :a::float8 FROM t WHERE x = :c")
    assert statement.sql == "SELECT $1, CAST($2 AS text), $1::float8 FROM t WHERE x = $3"
    assert statement.names == ("a", "b", "c")
    assert statement.args({"c": 3, "b": 2, "a": 1}) == [1, 2, 3]


@pytest.fixture
async def workers(postgres_url: str) -> AsyncIterator[list[Database]]:
    """A migrated database and two handles on it, as two ``bastion serve`` workers."""
    setup = Database(postgres_url)
    await setup.upgrade()
    handles = [Database(postgres_url), Database(postgres_url)]
    assert all(h.postgres is not None for h in handles), "PostgreSQL takes the direct path"
    yield handles
    for db in [setup, *handles]:
        await db.close()


def _issuer(n: int) -> Callable[[CodeGrant], Issuance | None]:
    def issue(found: CodeGrant) -> Issuance:
        created = family(family_id=f"fam_{n}")
        return created, issued(f"j{n}", family_id=created.family_id, code_hash=found.code_hash)

    return issue


async def test_two_workers_redeeming_one_code_exactly_one_wins(workers: list[Database]) -> None:
    first, second = (SqlGrantStore(db) for db in workers)
    for round_ in range(20):
        code = f"c{round_}"
        await first.save_code(grant(code))
        results = await asyncio.gather(
            first.redeem_code(code_hash(code), NOW + 1, _issuer(2 * round_)),
            second.redeem_code(code_hash(code), NOW + 1, _issuer(2 * round_ + 1)),
        )
        assert sorted((consumed, done) for _, consumed, done in results) == [
            (False, False),
            (True, True),
        ]
        winner = 2 * round_ + [r[1] for r in results].index(True)
        loser = winner ^ 1
        assert all(found == replace(grant(code), consumed_at=NOW + 1) for found, _, _ in results)
        assert await second.family_of_code(code_hash(code)) == f"fam_{winner}"
        assert await first.get_family(f"fam_{loser}") is None
        assert await first.live_tokens(NOW, code_hash=code_hash(code)) == [
            (f"j{winner}", NOW + 300)
        ]


async def test_a_code_marked_replayed_is_used_up_and_issues_nothing(
    workers: list[Database],
) -> None:
    """The mark a replay leaves reaches a redemption that has not written yet."""
    store = SqlGrantStore(workers[0])
    await store.save_code(grant())
    await SqlGrantStore(workers[1]).mark_replayed(code_hash("c"), NOW + 1)
    found, consumed, done = await store.redeem_code(code_hash("c"), NOW + 2, _issuer(0))
    assert (found is not None, consumed, done) == (True, True, False)
    assert await store.family_of_code(code_hash("c")) is None
    assert await store.get_family("fam_0") is None
    assert await store.live_tokens(NOW, code_hash=code_hash("c")) == []


async def test_refresh_reuse_and_revocation_across_workers(workers: list[Database]) -> None:
    first, second = (SqlGrantStore(db) for db in workers)
    created = family()
    fid = created.family_id
    await first.create_family(created)
    # Both workers rotate with the same token: one advances the family, the other does not.
    wins = await asyncio.gather(
        first.rotate_family(fid, 0, NOW + 1, "fp1", issued("r1", family_id=fid)),
        second.rotate_family(fid, 0, NOW + 1, "fp2", issued("r2", family_id=fid)),
    )
    assert sorted(wins) == [False, True]
    # The rotated-out token again (reuse): nothing is issued from generation 0 any more.
    assert not await second.reissue_in_family(fid, 0, issued("r3", family_id=fid))
    assert not await first.rotate_family(fid, 0, NOW + 2, "fp1", issued("r4", family_id=fid))
    assert await first.reissue_in_family(fid, 1, issued("r5", family_id=fid))
    # Reuse detection revokes the family on one worker; the other sees it at once.
    assert await second.revoke_families(NOW + 3, "refresh_reuse", family_id=fid) == [fid]
    revoked = await first.get_family(fid)
    assert revoked is not None
    assert revoked.revoked_at == NOW + 3
    assert not await first.rotate_family(fid, 1, NOW + 4, "fp1", issued("r6", family_id=fid))
    assert not await first.reissue_in_family(fid, 1, issued("r7", family_id=fid))
    live = {jti for jti, _ in await second.live_tokens(NOW, family_ids=[fid])}
    assert live == {"r1" if wins[0] else "r2", "r5"}


async def test_reads_and_writes_resume_by_themselves_after_the_server_is_lost(
    postgres_url: str, proxies: tuple[TcpProxy, TcpProxy]
) -> None:
    db_proxy, _ = proxies
    setup = Database(postgres_url)
    await setup.upgrade()
    database = Database(via(postgres_url, db_proxy), connect_timeout=2)
    grants, users = SqlGrantStore(database), SqlUserStore(database)
    try:
        created = family()
        await grants.create_family(created)
        assert await grants.get_family(created.family_id) == created  # a pooled connection
        db_proxy.stop()
        with pytest.raises(StoreUnavailable) as caught:
            await grants.get_family(created.family_id)
        assert caught.value.store == "database"
        with pytest.raises(StoreUnavailable):
            await grants.rotate_family(created.family_id, 0, NOW + 1, "", issued("t1"))
        db_proxy.start()
        assert await grants.get_family(created.family_id) == created
        assert await users.token_state("nobody") is None
        assert await grants.rotate_family(
            created.family_id, 0, NOW + 1, "", issued("t2", family_id=created.family_id)
        )
    finally:
        await database.close()
        await setup.close()
