"""The ownership registry in SQL (``bastion.gateway.objects.OwnershipStore``): which
subject created which object through the gateway."""

from __future__ import annotations

from sqlalchemy import and_, delete, select
from sqlalchemy.sql.elements import ColumnElement

from bastion.store.sql.database import Database
from bastion.store.sql.rows import Rows
from bastion.store.sql.schema import object_owners

# The width of ``object_owners.object_id``.
MAX_OBJECT_ID = 256


def _object(kind: str, object_id: str) -> ColumnElement[bool]:
    return and_(object_owners.c.kind == kind, object_owners.c.object_id == object_id)


class SqlOwnershipStore:
    def __init__(self, database: Database) -> None:
        self._rows = Rows(database)

    async def owner(self, kind: str, object_id: str) -> str | None:
        if len(object_id) > MAX_OBJECT_ID:
            return None
        value = await self._rows.value(
            select(object_owners.c.owner).where(_object(kind, object_id))
        )
        return None if value is None else str(value)

    async def forget(self, kind: str, object_id: str) -> None:
        await self._rows.run(delete(object_owners).where(_object(kind, object_id)))

    async def record(self, kind: str, object_id: str, owner: str, now: float) -> tuple[str, bool]:
        # The first owner wins: an upstream that hands out an id twice cannot move an
        # object to another user through the gateway.
        if len(object_id) > MAX_OBJECT_ID:
            raise ValueError("object id too long to record")
        if await self._rows.insert_new(
            object_owners, kind=kind, object_id=object_id, owner=owner, created_at=now
        ):
            return owner, True
        current = await self.owner(kind, object_id)
        return (owner, False) if current is None else (current, False)
