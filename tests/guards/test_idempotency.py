"""Idempotency records on every backend (memory, Redis, SQLite, PostgreSQL), and the
draft-ietf-httpapi-idempotency-key-header-07 §2 semantics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.clock import FixedClock
from bastion.errors import InvalidInput
from bastion.guards.idempotency import (
    Claim,
    Idempotency,
    IdempotencyConflict,
    IdempotencyMismatch,
    IdempotencyStore,
    Stored,
    fingerprint,
    parse_key,
)
from bastion.guards.idempotency_stores import HotIdempotencyStore, SqlIdempotencyStore
from bastion.store.memory.hot import MemoryHotStore
from bastion.store.redis.hot import RedisHotStore
from bastion.store.sql.database import Database
from tests.support.services import unique_name

TTL = 60.0


@pytest.fixture(params=["memory", "redis", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """Which store, and its URL (resolved outside the event loop the stores run in)."""
    if request.param == "memory":
        return "memory", None
    if request.param == "redis":
        return "redis", str(request.getfixturevalue("redis_url"))
    if request.param == "sqlite":
        return "sql", f"sqlite+aiosqlite:///{tmp_path}/idempotency.db"
    return "sql", str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(
    backend: tuple[str, str | None], clock: FixedClock
) -> AsyncIterator[IdempotencyStore]:
    kind, url = backend
    if kind == "memory":
        yield HotIdempotencyStore(MemoryHotStore(clock))
    elif kind == "redis":
        assert url is not None
        hot = RedisHotStore(url, prefix=f"{unique_name('idem')}:")
        yield HotIdempotencyStore(hot)
        await hot.close()
    else:
        assert url is not None
        database = Database(url)
        await database.upgrade()
        yield SqlIdempotencyStore(database, clock)
        await database.close()


async def _start(
    service: Idempotency, key: str, body: bytes = b"{}", who: str = "alice"
) -> Claim | Stored:
    return await service.begin(
        key,
        route="create",
        principal=who,
        fingerprint=fingerprint("POST", "create", who, body),
        ttl=TTL,
    )


async def test_replay_conflict_mismatch_and_scope(
    store: IdempotencyStore, clock: FixedClock
) -> None:
    service = Idempotency(store, clock)
    claim = await _start(service, "k1")
    assert isinstance(claim, Claim)
    # §2.6: a duplicate while the first is running.
    with pytest.raises(IdempotencyConflict):
        await _start(service, "k1")
    await service.complete(
        claim, Stored(201, [(b"content-type", b"application/json")], b'{"id":1}'), TTL
    )
    replay = await _start(service, "k1")
    assert replay == Stored(201, [(b"content-type", b"application/json")], b'{"id":1}')
    # §2.7: the same key with another payload.
    with pytest.raises(IdempotencyMismatch):
        await _start(service, "k1", body=b'{"other": 1}')
    # Keys are scoped per caller: Bob's "k1" is another key.
    assert isinstance(await _start(service, "k1", who="bob"), Claim)


async def test_keys_expire(store: IdempotencyStore, clock: FixedClock) -> None:
    service = Idempotency(store, clock)
    claim = await _start(service, "k2")
    assert isinstance(claim, Claim)
    await service.complete(claim, Stored(200, [], b"x"), ttl=1.0)
    clock.advance(2.0)
    if isinstance(store, HotIdempotencyStore) and isinstance(store._hot, RedisHotStore):
        import asyncio

        await asyncio.sleep(1.1)  # Redis keeps its own time
    assert isinstance(await _start(service, "k2"), Claim)


async def test_crash_window_never_runs_twice(store: IdempotencyStore, clock: FixedClock) -> None:
    """A process that dies after calling the upstream leaves the key running; one whose
    call timed out marks it unknown. Neither is ever run again under that key."""
    service = Idempotency(store, clock)
    crashed = await _start(service, "k3")
    assert isinstance(crashed, Claim)
    # ... the process dies here: no complete(), no release().
    clock.advance(30)
    with pytest.raises(IdempotencyConflict):
        await _start(service, "k3")
    timed_out = await _start(service, "k4")
    assert isinstance(timed_out, Claim)
    await service.unknown(timed_out, TTL)
    with pytest.raises(IdempotencyConflict) as caught:
        await _start(service, "k4")
    assert caught.value.type.endswith("idempotency-outcome-unknown")


async def test_release_when_the_upstream_was_never_reached(
    store: IdempotencyStore, clock: FixedClock
) -> None:
    service = Idempotency(store, clock)
    claim = await _start(service, "k5")
    assert isinstance(claim, Claim)
    await service.release(claim)
    assert isinstance(await _start(service, "k5"), Claim)


def test_key_syntax() -> None:
    """Draft §2.1: an sf-string; an unquoted token is tolerated."""
    assert parse_key('"8e03978e-40d5-43e8-bc93-6894a57f9324"') == (
        "8e03978e-40d5-43e8-bc93-6894a57f9324"
    )
    assert parse_key("abc") == "abc"
    assert parse_key(None) is None
    for bad in ("", '""', "a b", "x" * 256, "caf\u00e9"):
        with pytest.raises(InvalidInput):
            parse_key(bad)
