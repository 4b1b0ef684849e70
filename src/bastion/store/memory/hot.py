"""Hot state in this process's memory.

Each method runs without awaiting, so on one event loop it is atomic by construction.
That is also why this store is for a single process: several workers would each have
their own counters (use Redis for that).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from bastion.clock import Clock, SystemClock
from bastion.errors import StoreError

# Expired entries are removed when touched, and on every write the few at the front of
# an expiry heap are dropped, so memory stays bounded for keys written once and never
# read again, at O(log n) per write.
_SWEEP_BATCH = 8
_COMPACT_SLACK = 1024


class MemoryHotStore:
    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._expiries: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._data)

    def _live(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at is not None and expires_at <= self._clock.now():
            del self._data[key]
            return None
        return value

    def _store(self, key: str, value: bytes, ttl: float | None) -> None:
        if ttl is not None and ttl <= 0:
            raise ValueError("ttl must be positive")
        now = self._clock.now()
        expires_at = None if ttl is None else now + ttl
        self._data[key] = (value, expires_at)
        if expires_at is not None:
            heapq.heappush(self._expiries, (expires_at, key))
            if len(self._expiries) > 2 * len(self._data) + _COMPACT_SLACK:
                self._compact()
        self._sweep(now)

    def _compact(self) -> None:
        """Rebuild the heap from live entries: rewriting one key with a TTL again and
        again leaves a stale heap entry each time, which would otherwise pile up for a
        whole TTL window. Amortised O(1) per write, as it runs once the heap doubles."""
        self._expiries = [(exp, k) for k, (_, exp) in self._data.items() if exp is not None]
        heapq.heapify(self._expiries)

    def _sweep(self, now: float) -> None:
        for _ in range(_SWEEP_BATCH):
            if not self._expiries or self._expiries[0][0] > now:
                return
            expires_at, key = heapq.heappop(self._expiries)
            entry = self._data.get(key)
            # The key may have been rewritten with another expiry since this was pushed.
            if entry is not None and entry[1] == expires_at:
                del self._data[key]

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._store(key, value, ttl)

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        if self._live(key) is not None:
            return False
        self._store(key, value, ttl)
        return True

    async def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None = None
    ) -> bool:
        if self._live(key) != expected:
            return False
        self._store(key, value, ttl)
        return True

    async def compare_and_delete(self, key: str, expected: bytes) -> bool:
        if self._live(key) != expected:
            return False
        del self._data[key]
        return True

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        current = self._live(key)
        if current is None:
            self._store(key, str(amount).encode(), ttl)
            return amount
        try:
            total = int(current) + amount
        except ValueError:
            raise StoreError(f"value at {key!r} is not a counter") from None
        # Keep the expiry the counter was created with, as Redis INCRBY does.
        self._data[key] = (str(total).encode(), self._data[key][1])
        return total

    async def delete(self, key: str) -> bool:
        return self._live(key) is not None and self._data.pop(key, None) is not None

    async def ttl(self, key: str) -> float | None:
        if self._live(key) is None:
            return None
        expires_at = self._data[key][1]
        return None if expires_at is None else expires_at - self._clock.now()

    async def rate_check(
        self, keys: Sequence[str], rates: Sequence[tuple[float, float]], now: float
    ) -> tuple[bool, list[float | None]]:
        if len(keys) == 1:
            # One limit, the usual case: the same step without the lists.
            tat = self._tat(keys[0])
            interval, span = rates[0]
            new_tat = (now if tat is None else max(tat, now)) + interval
            if new_tat - span > now + 1e-6:
                return False, [tat]
            self._store(keys[0], repr(new_tat).encode(), new_tat - now + 0.001)
            return True, [tat]
        previous = [self._tat(key) for key in keys]
        moved = [
            (now if tat is None else max(tat, now)) + interval
            for tat, (interval, _) in zip(previous, rates, strict=True)
        ]
        if any(new - span > now + 1e-6 for new, (_, span) in zip(moved, rates, strict=True)):
            return False, previous
        for key, new_tat in zip(keys, moved, strict=True):
            self._store(key, repr(new_tat).encode(), new_tat - now + 0.001)
        return True, previous

    def _tat(self, key: str) -> float | None:
        raw = self._live(key)
        return None if raw is None else float(raw)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()
        self._expiries.clear()
