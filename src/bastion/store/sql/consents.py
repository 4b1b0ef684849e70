"""Consent in SQL (``bastion.authserver.stores.ConsentStore``): per user and client, the
scopes a user agreed to, remembered until revoked."""

from __future__ import annotations

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from bastion.store.sql.codec import dump_list, load_tuple
from bastion.store.sql.database import Database
from bastion.store.sql.rows import Rows
from bastion.store.sql.schema import consents


def _pair(subject: str, client_id: str) -> ColumnElement[bool]:
    return and_(consents.c.subject == subject, consents.c.client_id == client_id)


class SqlConsentStore:
    def __init__(self, database: Database) -> None:
        self._rows = Rows(database)

    async def granted(self, subject: str, client_id: str) -> frozenset[str]:
        scopes = await self._rows.value(select(consents.c.scopes).where(_pair(subject, client_id)))
        return frozenset(load_tuple(scopes))

    async def grant(self, subject: str, client_id: str, scopes: frozenset[str], now: float) -> None:
        where = _pair(subject, client_id)
        async with self._rows.transaction() as tx:
            current = await tx.value(select(consents.c.scopes).where(where))
            merged = dump_list(sorted(set(load_tuple(current)) | scopes))
            if current is None:
                await tx.run(
                    insert(consents).values(
                        subject=subject, client_id=client_id, scopes=merged, granted_at=now
                    )
                )
            else:
                await tx.run(update(consents).where(where).values(scopes=merged, granted_at=now))

    async def revoke(self, subject: str, client_id: str | None = None) -> int:
        condition = (
            consents.c.subject == subject if client_id is None else _pair(subject, client_id)
        )
        return await self._rows.run(delete(consents).where(condition))

    async def of_subject(self, subject: str) -> dict[str, frozenset[str]]:
        granted = await self._rows.all(
            select(consents.c.client_id, consents.c.scopes).where(consents.c.subject == subject),
            lambda row: (str(row["client_id"]), frozenset(load_tuple(row["scopes"]))),
        )
        return dict(granted)
