"""One in-process cache for every hot-path lookup: bounded, least recently used out
first, each entry with its own expiry, time from an injected clock.

Used for verified tokens (until their ``exp``), known object owners, internal and
upstream tokens, and stale answers. An entry past its expiry is never returned; one
that is used moves to the back, so a busy key is not evicted because it is old.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from bastion.clock import Clock

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, clock: Clock, maxsize: int) -> None:
        if maxsize < 0:
            raise ValueError("maxsize cannot be negative")
        self._clock = clock
        self._maxsize = maxsize
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if self._clock.now() >= found[1]:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return found[0]

    def set(self, key: K, value: V, expires_at: float) -> None:
        """Keep ``value`` until ``expires_at`` (a time on the injected clock)."""
        if self._maxsize == 0:
            return
        self._entries[key] = (value, expires_at)
        self._entries.move_to_end(key)
        if len(self._entries) > self._maxsize:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
