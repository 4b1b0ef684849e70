"""What only the in-memory store needs proving: expiry by the injected clock, bounded size."""

from __future__ import annotations

from bastion.clock import FixedClock
from bastion.store.memory.hot import MemoryHotStore


async def test_expiry_follows_the_injected_clock() -> None:
    clock = FixedClock()
    store = MemoryHotStore(clock)
    await store.set("k", b"v", ttl=10)
    clock.advance(9.999)
    assert await store.get("k") == b"v"
    clock.advance(0.001)
    assert await store.get("k") is None


async def test_keys_never_read_again_do_not_accumulate() -> None:
    clock = FixedClock()
    store = MemoryHotStore(clock)
    for i in range(10_000):
        await store.set_if_absent(f"once-{i}", b"1", ttl=1)
        clock.advance(0.01)
    # Only keys from the last second can still be alive; each write sweeps expired ones.
    assert len(store) <= 101


async def test_a_rewritten_key_keeps_its_new_expiry() -> None:
    clock = FixedClock()
    store = MemoryHotStore(clock)
    await store.set("k", b"old", ttl=1)
    await store.set("k", b"new", ttl=100)
    clock.advance(2)
    await store.set("other", b"x", ttl=1)  # triggers a sweep past the old expiry
    assert await store.get("k") == b"new"


async def test_rewriting_one_key_does_not_grow_the_expiry_heap() -> None:
    store = MemoryHotStore(FixedClock())
    for _ in range(50_000):
        await store.set("session:alice", b"v", ttl=86_400)
    assert len(store) == 1
    assert len(store._expiries) <= 2 + 1024
