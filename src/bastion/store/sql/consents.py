"""Consent per user and client: the scopes a user agreed to, remembered until revoked."""

from __future__ import annotations

from sqlalchemy import and_, delete, insert, select, update

from bastion.store.sql.codec import dump_list, load_tuple
from bastion.store.sql.database import Database
from bastion.store.sql.schema import consents


class SqlConsentStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def granted(self, subject: str, client_id: str) -> frozenset[str]:
        async with self._db.connect() as conn:
            value = await conn.scalar(
                select(consents.c.scopes).where(
                    and_(consents.c.subject == subject, consents.c.client_id == client_id)
                )
            )
        return frozenset(load_tuple(value))

    async def grant(self, subject: str, client_id: str, scopes: frozenset[str], now: float) -> None:
        where = and_(consents.c.subject == subject, consents.c.client_id == client_id)
        async with self._db.connect() as conn:
            current = await conn.scalar(select(consents.c.scopes).where(where))
            merged = dump_list(sorted(set(load_tuple(current)) | scopes))
            if current is None:
                await conn.execute(
                    insert(consents).values(
                        subject=subject, client_id=client_id, scopes=merged, granted_at=now
                    )
                )
            else:
                await conn.execute(
                    update(consents).where(where).values(scopes=merged, granted_at=now)
                )

    async def revoke(self, subject: str, client_id: str | None = None) -> int:
        condition = consents.c.subject == subject
        if client_id is not None:
            condition = and_(condition, consents.c.client_id == client_id)
        async with self._db.connect() as conn:
            return int((await conn.execute(delete(consents).where(condition))).rowcount)

    async def of_subject(self, subject: str) -> dict[str, frozenset[str]]:
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(consents.c.client_id, consents.c.scopes).where(consents.c.subject == subject)
            )
            return {str(client): frozenset(load_tuple(scopes)) for client, scopes in rows}
