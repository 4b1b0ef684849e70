"""Expiring credentials (internal tokens, an upstream's own access tokens) per key,
fetched once per key however many requests want them, and renewed ahead of expiry.

Without this, every request in flight when a cached token comes due would fetch its
own: 64 concurrent requests, 64 tokens and 64 rows per renewal for one user. Here:

- a value with at least ``renew_ahead`` seconds left is simply returned;
- one with less (but at least ``min_remaining``) is still returned, and one renewal
  starts in the background, so in the steady state no request waits for a token;
- otherwise the request waits for the one fetch in flight for its key (starting it if
  there is none). A failed fetch fails the requests waiting for it; the next request
  tries again (fail closed: no stale credential is used past ``min_remaining``).

A waiting request that is cancelled does not cancel the fetch the others wait for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from bastion.caches import TTLCache
from bastion.clock import Clock

log = logging.getLogger("bastion.gateway")

Fetch = Callable[[], Awaitable[tuple[str, float]]]


@dataclass(frozen=True)
class Timing:
    """When a value with a given lifetime is renewed (ahead) and no longer used (minimum)."""

    min_remaining: float
    renew_ahead: float

    @classmethod
    def for_lifetime(cls, lifetime: float, min_remaining: float, renew_ahead: float) -> Timing:
        # A short-lived value is still used for most of its life, never for none of it.
        return cls(min(min_remaining, lifetime / 3), min(renew_ahead, lifetime / 2))


class Renewing:
    def __init__(self, clock: Clock, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._values: TTLCache[Hashable, tuple[str, float]] = TTLCache(clock, max_entries)
        self._flights: dict[Hashable, asyncio.Future[tuple[str, float]]] = {}

    async def get(self, key: Hashable, fetch: Fetch, timing: Timing) -> str:
        found = self._values.get(key)
        if found is not None:
            left = found[1] - self._clock.now()
            if left >= timing.min_remaining:
                if left < timing.renew_ahead and key not in self._flights:
                    self._start(key, fetch)
                return found[0]
        flight = self._flights.get(key) or self._start(key, fetch)
        value, _ = await asyncio.shield(flight)
        return value

    def fresh(self, key: Hashable, timing: Timing) -> str | None:
        """The value for ``key`` while ``get`` would return it with nothing to start or
        wait for (at least ``renew_ahead`` left), else None."""
        found = self._values.get(key)
        if found is None:
            return None
        left = found[1] - self._clock.now()
        return found[0] if left >= max(timing.renew_ahead, timing.min_remaining) else None

    def value(self, key: Hashable) -> str | None:
        """The value held for ``key``, however close to expiry."""
        found = self._values.get(key)
        return None if found is None else found[0]

    def forget(self, key: Hashable) -> None:
        self._values.pop(key)

    def _start(self, key: Hashable, fetch: Fetch) -> asyncio.Future[tuple[str, float]]:
        flight = asyncio.ensure_future(fetch())
        self._flights[key] = flight

        def landed(done: asyncio.Future[tuple[str, float]]) -> None:
            self._flights.pop(key, None)
            if done.cancelled():
                return
            if (error := done.exception()) is not None:
                # Whoever waited has the error; a renewal nobody waited for is logged.
                log.warning("renewing a credential failed: %s", type(error).__name__)
                return
            value, expires_at = done.result()
            self._values.set(key, (value, expires_at), expires_at)

        flight.add_done_callback(landed)
        return flight
