"""Hot-state primitives per second, against the bare operation they wrap.

Sequential operations measure per-call cost (what a request pays); the concurrent rows
use many in-flight calls, as a busy gateway does.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from bastion.store.memory.hot import MemoryHotStore
from bastion.store.redis.hot import RedisHotStore
from bench.rates import rate as measure

REDIS_URL = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DURATION = float(os.environ.get("BENCH_SECONDS", "1.0"))
CONCURRENCY = 32

Op = Callable[[int], Awaitable[object]]


async def rate(op: Op, concurrency: int = 1) -> float:
    return await measure(op, concurrency, DURATION)


def row(name: str, ours: float, baseline: float) -> None:
    print(f"{name:<44} {ours:>12,.0f}/s {baseline:>12,.0f}/s {ours / baseline:>7.2f}")


async def memory_rows() -> None:
    store = MemoryHotStore()
    plain: dict[str, int] = {}

    async def dict_incr(i: int) -> object:
        plain[f"k{i % 1000}"] = plain.get(f"k{i % 1000}", 0) + 1
        return None

    row(
        "memory incr (ttl) vs dict",
        await rate(lambda i: store.incr(f"k{i % 1000}", ttl=60)),
        await rate(dict_incr),
    )
    row(
        "memory set_if_absent vs dict",
        await rate(lambda i: store.set_if_absent(f"n{i}", b"1", ttl=60)),
        await rate(dict_incr),
    )


@asynccontextmanager
async def scratch_redis() -> AsyncIterator[tuple[RedisHotStore, aioredis.Redis, str] | None]:
    """A store and a raw client on a fresh key prefix, deleted afterwards; None (with a
    note) when Redis is unreachable."""
    prefix = f"bench:{secrets.token_hex(4)}:"
    store = RedisHotStore(REDIS_URL, prefix=prefix)
    raw = aioredis.Redis.from_url(REDIS_URL)
    try:
        await raw.ping()
    except Exception as exc:
        print(f"(Redis rows skipped: {REDIS_URL} unreachable: {type(exc).__name__})")
        yield None
        return
    try:
        yield store, raw, prefix
    finally:
        keys = [k async for k in raw.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await raw.delete(*keys[start : start + 500])
        await raw.aclose()
        await store.close()


async def redis_rows() -> None:
    async with scratch_redis() as scratch:
        if scratch is not None:
            await _redis_rows(*scratch)


async def _redis_rows(store: RedisHotStore, raw: aioredis.Redis, prefix: str) -> None:
    # Distinct keys per call: this measures cost, not contention on one key.
    async def cas(i: int) -> object:
        current = await store.get(f"cas{i % 1000}")
        return await store.compare_and_set(f"cas{i % 1000}", current, b"x")

    for concurrency in (1, CONCURRENCY):
        tag = f"x{concurrency}"
        row(
            f"redis incr (ttl, MULTI) vs raw INCR {tag}",
            await rate(lambda i: store.incr(f"c{i % 1000}", ttl=60), concurrency),
            await rate(lambda i: raw.incr(f"{prefix}r{i % 1000}"), concurrency),
        )
        row(
            f"redis set_if_absent vs raw SET NX {tag}",
            await rate(lambda i: store.set_if_absent(f"s{i}", b"1", ttl=60), concurrency),
            await rate(lambda i: raw.set(f"{prefix}t{i}", b"1", nx=True, px=60000), concurrency),
        )
        row(
            f"redis get+compare_and_set vs raw GET+SET {tag}",
            await rate(cas, concurrency),
            await rate(lambda i: _get_set(raw, f"{prefix}g{i % 1000}"), concurrency),
        )


async def _get_set(raw: aioredis.Redis, key: str) -> object:
    await raw.get(key)
    return await raw.set(key, b"x")


async def main() -> None:
    print(f"{'operation':<44} {'bastion':>14} {'baseline':>14} {'ratio':>7}")
    await memory_rows()
    await redis_rows()


if __name__ == "__main__":
    asyncio.run(main())
