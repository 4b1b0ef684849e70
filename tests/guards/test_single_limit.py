"""The limiter's single-limit path (``RateLimiter._check_one``) against its general path:
the same admissions, the same RateLimit fields byte for byte, the same refusals, for any
limit and any arrival times. Also the memory store's one-key step against its general one."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.audit import AuditPipeline
from bastion.clock import FixedClock
from bastion.errors import RateLimited
from bastion.guards.limiter import Facts, RateLimiter
from bastion.guards.ratelimit_headers import (
    Advertised,
    Advertisement,
    policy_field,
    ratelimit_field,
)
from bastion.guards.settings import LimitSettings
from bastion.store.memory.hot import MemoryHotStore

START = 1_800_000_000.0

limits = st.builds(
    LimitSettings,
    name=st.sampled_from(["per-user", "burst", "a.b_c-1"]),
    by=st.sampled_from([("ip",), ("user",), ("global",), ("tier",), ("client", "route")]),
    rate=st.integers(1, 20),
    window=st.sampled_from([0.5, 1.0, 7.0, 60.0]),
    burst=st.none() | st.integers(1, 25),
    visible=st.booleans(),
    tiers=st.just({}),
)
facts = st.builds(
    Facts,
    ip=st.sampled_from(["192.0.2.1", "2001:db8::1", None]),
    user=st.sampled_from(["alice", "bob", None]),
    client=st.sampled_from(["app", None]),
    route=st.just("GET /hello"),
    claims=st.sampled_from([None, {"tier": "gold"}]),
)
# Gaps between requests, from bursts (0) to longer than any window.
gaps = st.lists(st.sampled_from([0.0, 0.001, 0.05, 0.3, 1.0, 2.5, 61.0]), max_size=30)


def _limiter(clock: FixedClock) -> RateLimiter:
    return RateLimiter(
        MemoryHotStore(clock), on_store_failure="local", audit=AuditPipeline([]), clock=clock
    )


async def _outcome(check: object) -> object:
    assert asyncio.iscoroutine(check)
    try:
        verdict = await check
    except RateLimited as refused:
        return (type(refused), refused.status, refused.headers, refused.extensions)
    return verdict.fields


@settings(max_examples=150, deadline=None)
@given(limit=limits, who=facts, steps=gaps)
def test_one_limit_matches_the_general_path(
    limit: LimitSettings, who: Facts, steps: list[float]
) -> None:
    async def run() -> None:
        fast_clock, general_clock = FixedClock(START), FixedClock(START)
        fast, general = _limiter(fast_clock), _limiter(general_clock)
        for gap in steps:
            fast_clock.advance(gap)
            general_clock.advance(gap)
            one = await _outcome(fast.check("route:x", [limit], who))
            all_ = await _outcome(general._check_all("route:x", [limit], who))
            assert one == all_

    asyncio.run(run())


@given(
    name=st.sampled_from(["p", "per-user", 'a"b\\c', "x y"]),
    quota=st.integers(1, 10_000),
    window=st.floats(0.001, 100_000),
    remaining=st.integers(-5, 10_005),
    reset=st.floats(0, 100_000),
)
def test_advertisement_bytes_match_the_fields(
    name: str, quota: int, window: float, remaining: int, reset: float
) -> None:
    shown = Advertisement(name, quota, window)
    one = [Advertised(name, quota, window, remaining, reset)]
    assert shown.policy == policy_field(one).encode()
    assert shown.current(remaining, reset) == ratelimit_field(one).encode()


@settings(deadline=None)
@given(
    rate=st.tuples(st.sampled_from([0.1, 0.5, 1.0, 3.0]), st.sampled_from([0.1, 1.0, 5.0])),
    steps=gaps,
)
def test_memory_store_one_key_matches_several(
    rate: tuple[float, float], steps: list[float]
) -> None:
    """A second key that never refuses leaves the first key's step unchanged, so the
    store's one-key branch must agree with its general one."""

    async def run() -> None:
        clock = FixedClock(START)
        single, paired = MemoryHotStore(clock), MemoryHotStore(clock)
        loose = (1e-9, 1e9)
        for gap in steps:
            clock.advance(gap)
            now = clock.now()
            admitted, (tat,) = await single.rate_check(["k"], [rate], now)
            both, (paired_tat, _) = await paired.rate_check(["k", "other"], [rate, loose], now)
            assert (admitted, tat) == (both, paired_tat)

    asyncio.run(run())
