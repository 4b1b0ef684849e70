"""The one hot-path cache: expiry on the injected clock, least recently used evicted."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.caches import TTLCache
from bastion.clock import FixedClock


def test_entries_expire_on_the_injected_clock() -> None:
    clock = FixedClock(100.0)
    cache: TTLCache[str, int] = TTLCache(clock, 10)
    cache.set("a", 1, expires_at=105.0)
    assert cache.get("a") == 1
    clock.advance(4.9)
    assert cache.get("a") == 1
    clock.advance(0.1)
    assert cache.get("a") is None
    assert len(cache) == 0


def test_the_least_recently_used_goes_first() -> None:
    """Unlike eviction by insertion, a busy key survives newer, idle ones."""
    cache: TTLCache[str, int] = TTLCache(FixedClock(), 2)
    cache.set("busy", 1, expires_at=1e12)
    cache.set("idle", 2, expires_at=1e12)
    assert cache.get("busy") == 1
    cache.set("new", 3, expires_at=1e12)
    assert cache.get("busy") == 1
    assert cache.get("idle") is None


def test_a_zero_size_cache_keeps_nothing() -> None:
    cache: TTLCache[str, int] = TTLCache(FixedClock(), 0)
    cache.set("a", 1, expires_at=1e12)
    assert cache.get("a") is None
    with pytest.raises(ValueError, match="negative"):
        TTLCache(FixedClock(), -1)


@given(st.lists(st.tuples(st.integers(0, 20), st.booleans()), max_size=200), st.integers(1, 8))
def test_never_over_its_size_and_never_stale(operations: list[tuple[int, bool]], size: int) -> None:
    clock = FixedClock(0.0)
    cache: TTLCache[int, float] = TTLCache(clock, size)
    for key, write in operations:
        clock.advance(0.5)
        if write:
            cache.set(key, clock.now() + 3, expires_at=clock.now() + 3)
        else:
            found = cache.get(key)
            assert found is None or found > clock.now()
        assert len(cache) <= size
