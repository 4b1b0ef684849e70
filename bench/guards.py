"""Rate-limit decisions per second, memory and Redis, against the bare operation.

A decision is ``RateLimiter.check`` for one request against one or two limits: key
derivation, one atomic GCRA step (``HotStore.rate_check``; one Lua round trip on Redis)
and the RateLimit fields. Baselines, measured in the same run: a dict lookup and store
for memory; one raw ``GET`` (one round trip, no script) for Redis. Keys are spread over
1,000 users so the numbers show cost, not contention on one key.
"""

from __future__ import annotations

import asyncio

from bastion.audit import AuditPipeline
from bastion.clock import SystemClock
from bastion.guards.limiter import Facts, RateLimiter
from bastion.guards.settings import LimitSettings
from bastion.store.memory.hot import MemoryHotStore
from bastion.store.protocols import HotStore
from bench.hot_store import CONCURRENCY, rate, row, scratch_redis

ONE = (LimitSettings(name="per-user", by=("user",), rate=10**9, window=1.0),)
TWO = (*ONE, LimitSettings(name="per-ip", by=("ip",), rate=10**9, window=1.0, visible=False))


def limiter(hot: HotStore) -> RateLimiter:
    return RateLimiter(hot, on_store_failure="closed", audit=AuditPipeline([]), clock=SystemClock())


def facts(i: int) -> Facts:
    return Facts(ip=f"10.0.{i % 250}.{i % 4}", user=f"user-{i % 1000}", route="bench")


async def memory_rows() -> None:
    checker = limiter(MemoryHotStore())
    plain: dict[str, float] = {}

    async def dict_step(i: int) -> object:
        key = f"user-{i % 1000}"
        plain[key] = plain.get(key, 0.0) + 1.0
        return None

    baseline = await rate(dict_step)
    row(
        "memory, one limit vs dict",
        await rate(lambda i: checker.check("b", ONE, facts(i))),
        baseline,
    )
    row(
        "memory, two limits vs dict",
        await rate(lambda i: checker.check("b", TWO, facts(i))),
        baseline,
    )


async def redis_rows() -> None:
    async with scratch_redis() as scratch:
        if scratch is None:
            return
        store, raw, prefix = scratch
        checker = limiter(store)
        for concurrency in (1, CONCURRENCY):
            tag = f"x{concurrency}"
            baseline = await rate(lambda i: raw.get(f"{prefix}u{i % 1000}"), concurrency)
            row(
                f"redis, one limit (Lua) vs raw GET {tag}",
                await rate(lambda i: checker.check("b", ONE, facts(i)), concurrency),
                baseline,
            )
            row(
                f"redis, two limits (Lua) vs raw GET {tag}",
                await rate(lambda i: checker.check("b", TWO, facts(i)), concurrency),
                baseline,
            )


async def main() -> None:
    print(f"{'decision':<44} {'bastion':>14} {'baseline':>14} {'ratio':>7}")
    await memory_rows()
    await redis_rows()


if __name__ == "__main__":
    asyncio.run(main())
