"""Idempotency records in hot state (memory or Redis); in SQL: ``bastion.store.sql.idempotency``."""

from __future__ import annotations

from bastion.store.protocols import HotStore


class HotIdempotencyStore:
    def __init__(self, hot: HotStore) -> None:
        self._hot = hot

    async def claim(self, key: str, record: bytes, ttl: float) -> bytes | None:
        while True:
            if await self._hot.set_if_absent(key, record, ttl):
                return None
            existing = await self._hot.get(key)
            if existing is not None:
                return existing
            # Expired between the two calls: claim again.

    async def complete(self, key: str, record: bytes, ttl: float) -> None:
        await self._hot.set(key, record, ttl)

    async def release(self, key: str, record: bytes) -> None:
        await self._hot.compare_and_delete(key, record)
