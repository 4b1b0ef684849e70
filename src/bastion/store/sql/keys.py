"""Signing keys in SQL (``SigningKeyStore``)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import insert, select, update

from bastion.store.protocols import StoredKey
from bastion.store.sql.database import Database
from bastion.store.sql.rows import Rows
from bastion.store.sql.schema import signing_keys


class SqlSigningKeyStore:
    def __init__(self, database: Database) -> None:
        self._rows = Rows(database)

    async def list_keys(self) -> list[StoredKey]:
        return await self._rows.all(
            select(signing_keys).order_by(signing_keys.c.activates_at),
            lambda row: StoredKey(**row),
        )

    async def add_key(self, key: StoredKey, retirements: Mapping[str, float] | None = None) -> None:
        async with self._rows.transaction() as tx:
            await tx.run(
                insert(signing_keys).values(
                    kid=key.kid,
                    alg=key.alg,
                    created_at=key.created_at,
                    activates_at=key.activates_at,
                    retired_at=key.retired_at,
                    sealed_private_key=key.sealed_private_key,
                )
            )
            await _retire(tx, retirements or {})

    async def set_retired(self, retirements: Mapping[str, float]) -> None:
        async with self._rows.transaction() as tx:
            await _retire(tx, retirements)


async def _retire(tx: Rows, retirements: Mapping[str, float]) -> None:
    for kid, retired_at in retirements.items():
        await tx.run(
            update(signing_keys).where(signing_keys.c.kid == kid).values(retired_at=retired_at)
        )
