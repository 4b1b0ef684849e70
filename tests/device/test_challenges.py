"""Attestation challenges: unique, bound to a client, short-lived and used once, on
every hot store; with Redis unreachable the store's ``StoreUnavailable`` reaches the
caller (fail closed)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator

import pytest

from bastion.clock import FixedClock, SystemClock
from bastion.device.challenges import DeviceChallenges, challenge_key
from bastion.errors import StoreUnavailable
from bastion.store.memory.hot import MemoryHotStore
from bastion.store.protocols import HotStore
from bastion.store.redis.hot import RedisHotStore
from tests.support.services import unique_name
from tests.support.tcpproxy import TcpProxy, proxy_to, via


def _service(hot: HotStore, lifetime: float = 300.0) -> DeviceChallenges:
    return DeviceChallenges(hot, SystemClock(), lifetime)


async def test_issued_challenges_are_unique_43_char_base64url(hot_store: HotStore) -> None:
    service = _service(hot_store)
    values = [(await service.issue("app")).value for _ in range(50)]
    assert len(set(values)) == 50
    for value in values:
        assert len(value) == 43
        assert len(base64.urlsafe_b64decode(value + "=")) == 32


async def test_expires_at_is_now_plus_lifetime() -> None:
    clock = FixedClock()
    service = DeviceChallenges(MemoryHotStore(clock), clock, lifetime=120)
    challenge = await service.issue("app")
    assert challenge.expires_at == clock.now() + 120


async def test_a_challenge_is_consumed_once(hot_store: HotStore) -> None:
    service = _service(hot_store)
    challenge = await service.issue("app")
    assert await service.consume("app", challenge.value) is True
    assert await service.consume("app", challenge.value) is False


async def test_another_client_cannot_consume_it_nor_use_it_up(hot_store: HotStore) -> None:
    service = _service(hot_store)
    challenge = await service.issue("app")
    assert await service.consume("other-app", challenge.value) is False
    assert await service.consume("", challenge.value) is False
    # The refused attempt did not delete it: the rightful client still can, once.
    assert await service.consume("app", challenge.value) is True
    assert await service.consume("app", challenge.value) is False


async def test_an_unknown_challenge_is_refused(hot_store: HotStore) -> None:
    service = _service(hot_store)
    await service.issue("app")
    assert await service.consume("app", "A" * 43) is False


async def test_concurrent_consumes_accept_exactly_one(hot_store: HotStore) -> None:
    service = _service(hot_store)
    challenge = await service.issue("app")
    results = await asyncio.gather(*(service.consume("app", challenge.value) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]


async def test_an_expired_challenge_is_refused_in_memory() -> None:
    clock = FixedClock()
    service = DeviceChallenges(MemoryHotStore(clock), clock, lifetime=60)
    kept, expired = await service.issue("app"), await service.issue("app")
    clock.advance(59.9)
    assert await service.consume("app", kept.value) is True
    clock.advance(0.1)
    assert clock.now() >= expired.expires_at
    assert await service.consume("app", expired.value) is False


async def test_the_store_keeps_a_challenge_no_longer_than_its_lifetime(
    hot_store: HotStore,
) -> None:
    service = _service(hot_store, lifetime=30)
    challenge = await service.issue("app")
    left = await hot_store.ttl(challenge_key(challenge.value))
    assert left is not None
    assert 0 < left <= 30


async def test_an_expired_challenge_is_refused_by_the_store(hot_store: HotStore) -> None:
    service = _service(hot_store, lifetime=1)
    challenge = await service.issue("app")
    await asyncio.sleep(1.2)
    assert await service.consume("app", challenge.value) is False


class _Untouchable:
    """A hot store that fails the test if it is asked anything."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the store was asked {name}")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "A" * 42,
        "A" * 44,
        "A" * 42 + "=",
        "A" * 42 + "+",
        "A" * 42 + "/",
        "A" * 42 + "\n",
        "A" * 42 + "é",
        " " + "A" * 42,
        "A" * 21 + ".." + "A" * 20,
    ],
)
async def test_a_malformed_challenge_is_refused_without_the_store(text: str) -> None:
    service = DeviceChallenges(_Untouchable(), SystemClock())  # type: ignore[arg-type]
    assert await service.consume("app", text) is False


async def test_a_non_string_challenge_is_refused_without_the_store() -> None:
    service = DeviceChallenges(_Untouchable(), SystemClock())  # type: ignore[arg-type]
    assert await service.consume("app", None) is False  # type: ignore[arg-type]
    assert await service.consume("app", b"A" * 43) is False  # type: ignore[arg-type]


@pytest.mark.parametrize("lifetime", [0, -1, 300.001, 301, 3600, float("inf"), float("nan")])
def test_lifetime_outside_five_minutes_is_refused(lifetime: float) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        DeviceChallenges(MemoryHotStore(), SystemClock(), lifetime)


@pytest.mark.parametrize("lifetime", [0.001, 1, 300])
def test_lifetime_up_to_five_minutes_is_accepted(lifetime: float) -> None:
    assert DeviceChallenges(MemoryHotStore(), SystemClock(), lifetime).lifetime == lifetime


async def test_a_challenge_is_issued_to_a_client() -> None:
    with pytest.raises(ValueError, match="client"):
        await _service(MemoryHotStore()).issue("")


async def test_the_store_key_does_not_hold_the_challenge(hot_store: HotStore) -> None:
    service = _service(hot_store)
    challenge = await service.issue("app")
    key = challenge_key(challenge.value)
    assert challenge.value not in key
    assert key.startswith("device-challenge:")
    assert await hot_store.get(key) == b"app"
    assert await hot_store.get(challenge.value) is None


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[TcpProxy]:
    proxy = proxy_to(redis_url)
    yield proxy
    proxy.close()


async def test_redis_outage_raises_store_unavailable(redis_url: str, redis_proxy: TcpProxy) -> None:
    store = RedisHotStore(
        via(redis_url, redis_proxy),
        prefix=f"{unique_name('test')}:",
        connect_timeout=0.5,
        command_timeout=0.5,
    )
    try:
        service = _service(store)
        challenge = await service.issue("app")
        redis_proxy.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await service.consume("app", challenge.value)
        with pytest.raises(StoreUnavailable):
            await service.issue("app")
        assert time.monotonic() - started < 5
        redis_proxy.start()
        # Once Redis answers again the challenge is still there, still usable once.
        assert await service.consume("app", challenge.value) is True
        assert await service.consume("app", challenge.value) is False
    finally:
        await store.close()
