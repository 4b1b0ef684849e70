"""The authorization server's SQL stores, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os

import pytest

from bastion.accounts.records import BrowserSession, UserExists
from bastion.authserver.stores import ClientExists
from bastion.oauth import pkce
from bastion.oauth.clients import Client, hash_secret
from bastion.oauth.codes import CodeGrant, code_hash
from bastion.oauth.refresh import Family
from bastion.oauth.tokens import MAX_CLOCK_SKEW
from bastion.store.sql.clients import SqlClientStore
from bastion.store.sql.consents import SqlConsentStore
from bastion.store.sql.database import Database
from bastion.store.sql.grants import SqlGrantStore
from bastion.store.sql.sessions import SqlSessionStore
from bastion.store.sql.users import SqlUserStore

NOW = 1_700_000_000.0


async def test_clients_round_trip(migrated: Database) -> None:
    store = SqlClientStore(migrated)
    client = Client(
        client_id="svc",
        client_type="confidential",
        auth_method="private_key_jwt",
        grant_types=frozenset({"client_credentials"}),
        jwks={"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}]},
        scopes=frozenset({"a", "b"}),
        resources=frozenset({"https://api"}),
        secret_hash=hash_secret("s"),
        name="Service",
        exchange_subject_audiences=frozenset({"https://api", "https://app"}),
        exchange_delegation_chains=True,
        statement_values={"client_name": "Service", "scope": "a b", "grant_types": ["x"]},
    )
    await store.create(client, NOW, registration_token_hash="h")
    assert await store.get("svc") == client
    assert await store.registration_token_hash("svc") == "h"
    with pytest.raises(ClientExists):
        await store.create(client, NOW)
    from dataclasses import replace

    assert await store.update(replace(client, enabled=False), NOW)
    fetched = await store.get("svc")
    assert fetched is not None
    assert not fetched.enabled
    assert [c.client_id for c in await store.list()] == ["svc"]
    assert await store.delete("svc")
    assert await store.get("svc") is None


async def test_users(migrated: Database) -> None:
    store = SqlUserStore(migrated)
    alice = await store.create("alice", "hash", NOW)
    with pytest.raises(UserExists):
        await store.create("alice", None, NOW)
    assert (await store.by_username("alice")) == alice
    assert await store.invalidate_tokens(alice.user_id, NOW + 5)
    again = await store.get(alice.user_id)
    assert again is not None
    assert again.tokens_valid_after == NOW + 5
    assert "hash" not in repr(again)


def grant(code: str = "c") -> CodeGrant:
    return CodeGrant(
        code_hash=code_hash(code),
        client_id="app",
        redirect_uri="x:/cb",
        code_challenge=pkce.s256("v" * 43),
        scope=("openid",),
        resources=(),
        subject="u1",
        session_id="s1",
        auth_time=NOW,
        acr="pwd",
        amr=("pwd",),
        nonce="n",
        issued_at=NOW,
        expires_at=NOW + 60,
    )


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


def family(**overrides: object) -> Family:
    values: dict[str, object] = dict(
        family_id="fam_" + os.urandom(8).hex(),
        salt=os.urandom(16),
        client_id="app",
        subject="u1",
        scope=("openid",),
        resources=("https://api",),
        generation=0,
        rotated_at=NOW,
        created_at=NOW,
        last_used_at=NOW,
        expires_at=NOW + 86400,
        session_id="s1",
        auth_time=NOW,
        acr="pwd",
        amr=("pwd",),
    )
    values.update(overrides)
    return Family(**values)  # type: ignore[arg-type]


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
                SqlGrantStore(db).advance_family(created.family_id, 0, NOW + 1, f"fp{i}")
                for i, db in enumerate(databases)
            )
        )
        assert wins.count(True) == 1
        stored = await SqlGrantStore(setup).get_family(created.family_id)
        assert stored is not None
        assert stored.generation == 1
        assert stored == family(
            **{
                **created.__dict__,
                "generation": 1,
                "rotated_at": NOW + 1,
                "last_used_at": NOW + 1,
                "rotated_by": f"fp{wins.index(True)}",
            }
        ), "the winner's instance is the one recorded"
    finally:
        for db in [setup, *databases]:
            await db.close()


async def test_revocation_and_the_token_index(migrated: Database) -> None:
    store = SqlGrantStore(migrated)
    first, second = family(), family(subject="u2")
    await store.create_family(first)
    await store.create_family(second)
    await store.record_token(
        "j1", client_id="app", subject="u1", expires_at=NOW + 300, family_id=first.family_id
    )
    await store.record_token(
        "j2",
        client_id="app",
        subject="u1",
        expires_at=NOW - MAX_CLOCK_SKEW - 1,
        family_id=first.family_id,
    )
    await store.record_token(
        "j4", client_id="app", subject="u1", expires_at=NOW - 1, family_id=first.family_id
    )
    await store.record_token(
        "j3", client_id="app", subject="u2", expires_at=NOW + 300, code_hash="ch"
    )
    assert await store.revoke_families(NOW, "reuse", family_id=first.family_id) == [first.family_id]
    assert await store.revoke_families(NOW, "again", family_id=first.family_id) == []
    assert not await store.advance_family(first.family_id, 0, NOW), "revoked families stay put"
    # A token past exp still verifies within the forgiven clock skew, so it is live.
    assert sorted(await store.live_tokens(NOW, family_ids=[first.family_id])) == [
        ("j1", NOW + 300),
        ("j4", NOW - 1),
    ]
    assert await store.live_tokens(NOW, code_hash="ch") == [("j3", NOW + 300)]
    assert await store.revoke_families(NOW, "user", subject="u2") == [second.family_id]
    with pytest.raises(ValueError, match="selector"):
        await store.revoke_families(NOW, "everything")


async def test_consents(migrated: Database) -> None:
    store = SqlConsentStore(migrated)
    assert await store.granted("u1", "app") == frozenset()
    await store.grant("u1", "app", frozenset({"openid"}), NOW)
    await store.grant("u1", "app", frozenset({"orders:read"}), NOW)
    assert await store.granted("u1", "app") == {"openid", "orders:read"}
    assert await store.of_subject("u1") == {"app": frozenset({"openid", "orders:read"})}
    assert await store.revoke("u1", "app") == 1
    assert await store.granted("u1", "app") == frozenset()


async def test_browser_sessions(migrated: Database) -> None:
    store = SqlSessionStore(migrated)
    session = BrowserSession("sid1", "u1", NOW, "pwd", ("pwd",), NOW, NOW, NOW + 3600, None)
    await store.create("hash1", session)
    assert await store.get("hash1") == session
    assert await store.get("sid1") is None, "looked up by the cookie's hash only"
    assert await store.revoke(NOW + 1, subject="u1") == ["sid1"]
    revoked = await store.get("hash1")
    assert revoked is not None
    assert revoked.revoked_at == NOW + 1
