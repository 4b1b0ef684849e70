"""Where idempotency records live: hot state (memory or Redis) or SQL."""

from __future__ import annotations

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bastion.clock import Clock
from bastion.store.protocols import HotStore
from bastion.store.sql.database import Database
from bastion.store.sql.schema import idempotency_records


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


class SqlIdempotencyStore:
    """Durable records; expired ones are replaced on the next claim of the same key."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    async def claim(self, key: str, record: bytes, ttl: float) -> bytes | None:
        now = self._clock.now()
        table = idempotency_records
        for _ in range(3):
            try:
                async with self._db.connect() as conn:
                    await conn.execute(
                        insert(table).values(key=key, record=record, expires_at=now + ttl)
                    )
                return None
            except IntegrityError:
                pass
            async with self._db.connect() as conn:
                row = (
                    await conn.execute(
                        select(table.c.record, table.c.expires_at).where(table.c.key == key)
                    )
                ).first()
                if row is not None and row.expires_at > now:
                    return bytes(row.record)
                if row is not None:
                    await conn.execute(
                        delete(table).where(and_(table.c.key == key, table.c.expires_at <= now))
                    )
        raise RuntimeError("idempotency key contended past three attempts")

    async def complete(self, key: str, record: bytes, ttl: float) -> None:
        table = idempotency_records
        async with self._db.connect() as conn:
            await conn.execute(
                update(table)
                .where(table.c.key == key)
                .values(record=record, expires_at=self._clock.now() + ttl)
            )

    async def release(self, key: str, record: bytes) -> None:
        table = idempotency_records
        async with self._db.connect() as conn:
            await conn.execute(
                delete(table).where(and_(table.c.key == key, table.c.record == record))
            )
