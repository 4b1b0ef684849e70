"""The ownership registry: which subject created which object through the gateway."""

from __future__ import annotations

from sqlalchemy import and_, delete, insert, select
from sqlalchemy.exc import IntegrityError

from bastion.store.sql.database import Database
from bastion.store.sql.schema import object_owners

MAX_OBJECT_ID = 256


class SqlOwnershipStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def owner(self, kind: str, object_id: str) -> str | None:
        if len(object_id) > MAX_OBJECT_ID:
            return None
        async with self._db.connect() as conn:
            value = await conn.scalar(
                select(object_owners.c.owner).where(
                    and_(object_owners.c.kind == kind, object_owners.c.object_id == object_id)
                )
            )
        return None if value is None else str(value)

    async def forget(self, kind: str, object_id: str) -> None:
        async with self._db.connect() as conn:
            await conn.execute(
                delete(object_owners).where(
                    and_(object_owners.c.kind == kind, object_owners.c.object_id == object_id)
                )
            )

    async def record(self, kind: str, object_id: str, owner: str, now: float) -> tuple[str, bool]:
        """Record ``owner`` unless the object already has one; returns the owner on record
        and whether this call recorded it.

        The first owner wins: an upstream that hands out an id twice cannot move an object
        to another user through the gateway, and of two creates racing for one id only
        one is recorded.
        """
        if len(object_id) > MAX_OBJECT_ID:
            raise ValueError("object id too long to record")
        try:
            async with self._db.connect() as conn:
                await conn.execute(
                    insert(object_owners).values(
                        kind=kind, object_id=object_id, owner=owner, created_at=now
                    )
                )
        except IntegrityError:
            current = await self.owner(kind, object_id)
            return (owner, False) if current is None else (current, False)
        return owner, True
