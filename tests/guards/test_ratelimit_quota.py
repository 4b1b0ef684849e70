"""The advertised quota against what the limiter admits, draft-ietf-httpapi-ratelimit-headers-10:
``q`` (§3.1.1) is the quota over the window ``w`` (§3.1.3) and ``r`` (§4.1.1) the quota
units left, so ``r`` can never exceed ``q``. Bastion advertises the burst as the quota,
with the time the burst takes to come back at the sustained rate as its window."""

from __future__ import annotations

import asyncio
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.audit import AuditPipeline
from bastion.clock import FixedClock
from bastion.errors import RateLimited
from bastion.guards.limiter import Facts, RateLimiter
from bastion.guards.ratelimit_headers import Advertised, ratelimit_field
from bastion.guards.settings import LimitSettings
from bastion.store.memory.hot import MemoryHotStore
from bastion.store.protocols import HotStore

_R = re.compile(r";r=(\d+)")
_Q = re.compile(r";q=(\d+);w=(\d+)")


def _limiter(hot: HotStore, clock: FixedClock) -> RateLimiter:
    return RateLimiter(hot, on_store_failure="closed", audit=AuditPipeline([]), clock=clock)


async def _headers(limiter: RateLimiter, limit: LimitSettings) -> dict[str, str]:
    try:
        return (await limiter.check("test", [limit], Facts(ip="192.0.2.1"))).headers
    except RateLimited as refused:
        return dict(refused.headers)


async def test_burst_above_rate_from_the_issue(hot_store: HotStore) -> None:
    """``rate = 5, burst = 10``: the first answer used to say ``q=5`` and ``r=9``."""
    clock = FixedClock(1_800_000_000)
    hot = MemoryHotStore(clock) if isinstance(hot_store, MemoryHotStore) else hot_store
    limiter = _limiter(hot, clock)
    limit = LimitSettings(name="burst", rate=5, window=60, burst=10)
    first = await _headers(limiter, limit)
    # Ten at once, coming back at one every 12 seconds: 120 seconds for all ten.
    assert first["ratelimit-policy"] == '"burst";q=10;w=120'
    assert first["ratelimit"] == '"burst";r=9;t=12'
    answers = [await _headers(limiter, limit) for _ in range(10)]
    assert [int(_R.findall(a["ratelimit"])[0]) for a in answers] == [8, 7, 6, 5, 4, 3, 2, 1, 0, 0]


async def test_burst_below_rate_keeps_its_short_window(hot_store: HotStore) -> None:
    clock = FixedClock(1_800_000_000)
    hot = MemoryHotStore(clock) if isinstance(hot_store, MemoryHotStore) else hot_store
    limit = LimitSettings(name="calm", rate=60, window=60, burst=10)
    first = await _headers(_limiter(hot, clock), limit)
    assert first["ratelimit-policy"] == '"calm";q=10;w=10'
    assert first["ratelimit"] == '"calm";r=9;t=1'


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(1, 500),
    burst=st.one_of(st.none(), st.integers(1, 500)),
    window=st.sampled_from([1.0, 10.0, 60.0, 3600.0]),
    gaps=st.lists(st.floats(0, 120, allow_nan=False), min_size=1, max_size=40),
)
def test_remaining_never_exceeds_the_quota(
    rate: int, burst: int | None, window: float, gaps: list[float]
) -> None:
    """For every setting and any traffic, each answer has ``r <= q`` and ``w >= 1``."""
    clock = FixedClock(1_800_000_000)
    limiter = _limiter(MemoryHotStore(clock), clock)
    limit = LimitSettings(name="p", rate=rate, window=window, burst=burst)

    async def run() -> None:
        for gap in gaps:
            clock.advance(gap)
            headers = await _headers(limiter, limit)
            quota, seconds = map(int, _Q.findall(headers["ratelimit-policy"])[0])
            (remaining,) = map(int, _R.findall(headers["ratelimit"]))
            assert 0 <= remaining <= quota
            assert quota == (burst or rate)
            assert seconds >= 1

    asyncio.run(run())


@given(st.integers(1, 10**6), st.integers(0, 10**7))
def test_the_field_itself_never_says_more_than_the_quota(quota: int, remaining: int) -> None:
    field = ratelimit_field([Advertised("p", quota, 60.0, remaining, 1.0)])
    assert int(_R.findall(field)[0]) <= quota
