"""Idempotency records on every backend (memory, Redis, SQLite, PostgreSQL), and the
draft-ietf-httpapi-idempotency-key-header-07 §2 semantics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.clock import FixedClock
from bastion.errors import IdempotencyConflict, IdempotencyMismatch, InvalidInput
from bastion.guards.idempotency import (
    Claim,
    Idempotency,
    IdempotencyStore,
    Stored,
    fingerprint,
    parse_key,
)
from bastion.guards.idempotency_stores import HotIdempotencyStore
from bastion.store.memory.hot import MemoryHotStore
from bastion.store.redis.hot import RedisHotStore
from bastion.store.sql.database import Database
from bastion.store.sql.idempotency import SqlIdempotencyStore
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
    """Draft-07 §2.1: the key is an Item whose value is a String (RFC 9651 §3.3.3), parsed
    as a Structured Field: escapes are undone, and anything else is a 400."""
    assert parse_key('"8e03978e-40d5-43e8-bc93-6894a57f9324"') == (
        "8e03978e-40d5-43e8-bc93-6894a57f9324"
    )
    assert parse_key(None) is None
    # Valid sf-strings: a space, an escaped quote, an escaped backslash.
    assert parse_key('"a b"') == "a b"
    assert parse_key('"say \\"hi\\""') == 'say "hi"'
    assert parse_key('"back\\\\slash"') == "back\\slash"
    assert parse_key('"x" ') == "x"
    # Parameters carry nothing the draft defines: the key is the string alone.
    assert parse_key('"x";v=1') == "x"
    assert parse_key('"' + "x" * 255 + '"') == "x" * 255
    for bad in (
        "",
        '""',
        '"abc',  # unbalanced
        'abc"',
        '"a"b"',
        '"a\\x"',  # only \\ and \" are escapes
        '"tab\there"',
        '"' + "x" * 256 + '"',
        '"caf\u00e9"',
        "42",
        "?1",
        ":YWJj:",
        '"a", "b"',  # a List, not an Item
        '("a")',
    ):
        with pytest.raises(InvalidInput):
            parse_key(bad)


def test_unquoted_keys_are_refused_with_the_form_to_send() -> None:
    """A bare value is a Token (or not a Structured Field at all, like a UUID that starts
    with a digit): refused by default, with the quoted form in the detail."""
    for bare in ("abc", "8e03978e-40d5-43e8-bc93-6894a57f9324", "k:1/2"):
        with pytest.raises(InvalidInput) as refused:
            parse_key(bare)
        assert f'Idempotency-Key: "{bare}"' in str(refused.value)
        assert parse_key(bare, accept_unquoted=True) == bare
    # The switch does not widen what a key may contain.
    for bad in ("a b", "x" * 256, 'a"b', "a\\b", "caf\u00e9", ""):
        with pytest.raises(InvalidInput) as refused:
            parse_key(bad, accept_unquoted=True)
        assert "Idempotency-Key: " not in str(refused.value)


@given(st.text(max_size=300))
def test_any_header_value_parses_or_is_a_400(value: str) -> None:
    """Either a key of 1-255 printable ASCII characters, or our error, nothing else."""
    for unquoted in (False, True):
        try:
            key = parse_key(value, accept_unquoted=unquoted)
        except InvalidInput:
            continue
        assert key is not None
        assert 1 <= len(key) <= 255
        assert all(" " <= c <= "~" for c in key)
