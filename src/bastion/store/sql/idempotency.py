"""Idempotency records in SQL (``bastion.guards.idempotency.IdempotencyStore``), when
``[guards] idempotency_store = "sql"``: durable, and an expired record is replaced on the
next claim of its key."""

from __future__ import annotations

from sqlalchemy import and_, delete, select, update

from bastion.clock import Clock
from bastion.store.sql.database import Database
from bastion.store.sql.rows import Rows
from bastion.store.sql.schema import idempotency_records as records


class SqlIdempotencyStore:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._rows = Rows(database)
        self._clock = clock

    async def claim(self, key: str, record: bytes, ttl: float) -> bytes | None:
        now = self._clock.now()
        for _ in range(3):
            if await self._rows.insert_new(records, key=key, record=record, expires_at=now + ttl):
                return None
            async with self._rows.transaction() as tx:
                found = await tx.one(
                    select(records.c.record, records.c.expires_at).where(records.c.key == key),
                    lambda row: row,
                )
                if found is not None and found["expires_at"] > now:
                    return bytes(found["record"])
                if found is not None:
                    await tx.run(
                        delete(records).where(
                            and_(records.c.key == key, records.c.expires_at <= now)
                        )
                    )
        raise RuntimeError("idempotency key contended past three attempts")

    async def complete(self, key: str, record: bytes, ttl: float) -> None:
        await self._rows.run(
            update(records)
            .where(records.c.key == key)
            .values(record=record, expires_at=self._clock.now() + ttl)
        )

    async def release(self, key: str, record: bytes) -> None:
        await self._rows.run(
            delete(records).where(and_(records.c.key == key, records.c.record == record))
        )
