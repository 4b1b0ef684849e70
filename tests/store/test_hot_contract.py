"""The HotStore contract, run against every implementation (memory and Redis)."""

from __future__ import annotations

import asyncio

import pytest

from bastion.errors import StoreError, StoreUnavailable
from bastion.store.protocols import HotStore
from bastion.store.redis.hot import RedisHotStore
from tests.support.services import free_port

SHORT_TTL = 0.2


async def test_get_missing_is_none(hot_store: HotStore) -> None:
    assert await hot_store.get("absent") is None


async def test_set_then_get_and_overwrite(hot_store: HotStore) -> None:
    await hot_store.set("k", b"one")
    assert await hot_store.get("k") == b"one"
    await hot_store.set("k", b"\x00two\xff")
    assert await hot_store.get("k") == b"\x00two\xff"


async def test_ttl_expires_keys(hot_store: HotStore) -> None:
    await hot_store.set("short", b"v", ttl=SHORT_TTL)
    await hot_store.set("forever", b"v")
    remaining = await hot_store.ttl("short")
    assert remaining is not None
    assert 0 < remaining <= SHORT_TTL
    assert await hot_store.ttl("forever") is None
    await asyncio.sleep(SHORT_TTL * 2)
    assert await hot_store.get("short") is None
    assert await hot_store.ttl("short") is None
    assert await hot_store.get("forever") == b"v"


@pytest.mark.parametrize("ttl", [0, -1])
async def test_non_positive_ttl_is_refused(hot_store: HotStore, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await hot_store.set("k", b"v", ttl=ttl)


async def test_set_if_absent(hot_store: HotStore) -> None:
    assert await hot_store.set_if_absent("once", b"first", ttl=SHORT_TTL) is True
    assert await hot_store.set_if_absent("once", b"second") is False
    assert await hot_store.get("once") == b"first"
    await asyncio.sleep(SHORT_TTL * 2)
    assert await hot_store.set_if_absent("once", b"third") is True
    assert await hot_store.get("once") == b"third"


async def test_compare_and_set(hot_store: HotStore) -> None:
    assert await hot_store.compare_and_set("c", None, b"v1") is True
    assert await hot_store.compare_and_set("c", None, b"v2") is False
    assert await hot_store.compare_and_set("c", b"wrong", b"v2") is False
    assert await hot_store.get("c") == b"v1"
    assert await hot_store.compare_and_set("c", b"v1", b"v2", ttl=SHORT_TTL) is True
    assert await hot_store.get("c") == b"v2"
    assert await hot_store.ttl("c") is not None


async def test_compare_and_delete(hot_store: HotStore) -> None:
    await hot_store.set("lock", b"holder-a")
    assert await hot_store.compare_and_delete("lock", b"holder-b") is False
    assert await hot_store.get("lock") == b"holder-a"
    assert await hot_store.compare_and_delete("lock", b"holder-a") is True
    assert await hot_store.get("lock") is None
    assert await hot_store.compare_and_delete("lock", b"holder-a") is False


async def test_incr_creates_adds_and_keeps_first_ttl(hot_store: HotStore) -> None:
    assert await hot_store.incr("n", ttl=10) == 1
    assert await hot_store.incr("n", 5, ttl=1000) == 6
    assert await hot_store.incr("n", -2) == 4
    assert await hot_store.get("n") == b"4"
    remaining = await hot_store.ttl("n")
    assert remaining is not None
    assert remaining <= 10, "a later ttl must not extend the window the counter opened with"


async def test_incr_on_a_non_counter_is_an_error(hot_store: HotStore) -> None:
    await hot_store.set("text", b"not a number")
    with pytest.raises(StoreError):
        await hot_store.incr("text")


async def test_delete(hot_store: HotStore) -> None:
    await hot_store.set("d", b"v")
    assert await hot_store.delete("d") is True
    assert await hot_store.delete("d") is False
    assert await hot_store.get("d") is None


async def test_ping(hot_store: HotStore) -> None:
    await hot_store.ping()


# --- atomicity under concurrency ---------------------------------------------------------------
# With Redis every task below uses its own pooled connection, so the operations really
# interleave at the server; a non-atomic implementation loses updates here.

CONCURRENCY = 50


async def test_concurrent_incr_loses_nothing(hot_store: HotStore) -> None:
    results = await asyncio.gather(*(hot_store.incr("hits", ttl=60) for _ in range(CONCURRENCY)))
    assert sorted(results) == list(range(1, CONCURRENCY + 1))
    assert await hot_store.get("hits") == str(CONCURRENCY).encode()


async def test_concurrent_set_if_absent_has_one_winner(hot_store: HotStore) -> None:
    wins = await asyncio.gather(
        *(hot_store.set_if_absent("claim", f"{i}".encode(), ttl=60) for i in range(CONCURRENCY))
    )
    assert wins.count(True) == 1
    winner = wins.index(True)
    assert await hot_store.get("claim") == f"{winner}".encode()


async def test_concurrent_compare_and_set_serialises_updates(hot_store: HotStore) -> None:
    """Read-modify-write through CAS from many tasks: no increment may be lost."""
    await hot_store.set("cas", b"0")
    workers, rounds = 10, 10

    async def add_one() -> None:
        while True:
            current = await hot_store.get("cas")
            assert current is not None
            if await hot_store.compare_and_set("cas", current, str(int(current) + 1).encode()):
                return
            await asyncio.sleep(0)

    async def worker() -> None:
        for _ in range(rounds):
            await add_one()

    await asyncio.gather(*(worker() for _ in range(workers)))
    assert await hot_store.get("cas") == str(workers * rounds).encode()


# --- Redis unreachable --------------------------------------------------------------------------


async def test_unreachable_redis_raises_store_unavailable() -> None:
    store = RedisHotStore(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.5)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await store.get("k")
        assert caught.value.store == "hot_state"
        with pytest.raises(StoreUnavailable):
            await store.ping()
    finally:
        await store.close()


async def test_rate_check_is_all_or_nothing(hot_store: HotStore) -> None:
    """GCRA (bastion.guards.gcra): a burst of 2, then refusal; a refused check moves no key."""
    now = 1_000.0
    rates = [(1.0, 2.0), (10.0, 100.0)]
    first = await hot_store.rate_check(["a", "b"], rates, now)
    assert first == (True, [None, None])
    second = await hot_store.rate_check(["a", "b"], rates, now)
    assert second[0] is True
    assert second[1][0] == pytest.approx(now + 1.0)
    refused = await hot_store.rate_check(["a", "b"], rates, now)
    assert refused[0] is False
    # "b" did not move although it alone would have admitted the request.
    assert refused[1][1] == pytest.approx(now + 20.0)
    admitted, before = await hot_store.rate_check(["b"], [(10.0, 100.0)], now)
    assert admitted is True
    assert before == [pytest.approx(now + 20.0)]
    later = await hot_store.rate_check(["a"], [(1.0, 2.0)], now + 1.0)
    assert later[0] is True
