"""Signing keys in SQL (``SigningKeyStore``)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.store.protocols import StoredKey
from bastion.store.sql.database import Database
from bastion.store.sql.schema import signing_keys


class SqlSigningKeyStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def list_keys(self) -> list[StoredKey]:
        async with self._db.connect() as conn:
            rows = await conn.execute(select(signing_keys).order_by(signing_keys.c.activates_at))
            return [StoredKey(**row._asdict()) for row in rows]

    async def add_key(self, key: StoredKey, retirements: Mapping[str, float] | None = None) -> None:
        async with self._db.connect() as conn:
            await conn.execute(
                insert(signing_keys).values(
                    kid=key.kid,
                    alg=key.alg,
                    created_at=key.created_at,
                    activates_at=key.activates_at,
                    retired_at=key.retired_at,
                    sealed_private_key=key.sealed_private_key,
                )
            )
            await _retire(conn, retirements or {})

    async def set_retired(self, retirements: Mapping[str, float]) -> None:
        async with self._db.connect() as conn:
            await _retire(conn, retirements)


async def _retire(conn: AsyncConnection, retirements: Mapping[str, float]) -> None:
    for kid, retired_at in retirements.items():
        await conn.execute(
            update(signing_keys).where(signing_keys.c.kid == kid).values(retired_at=retired_at)
        )
