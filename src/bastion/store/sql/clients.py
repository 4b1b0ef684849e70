"""Clients created at run time in SQL (``bastion.authserver.stores.ClientStore``)."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from bastion.authserver.stores import ClientExists
from bastion.oauth.clients import Client
from bastion.store.sql.codec import dump_list, dump_map, load_map, load_tuple
from bastion.store.sql.database import Database
from bastion.store.sql.schema import clients


def _row(client: Client) -> dict[str, object]:
    return {
        "client_type": client.client_type,
        "auth_method": client.auth_method,
        "name": client.name,
        "redirect_uris": dump_list(client.redirect_uris),
        "scopes": dump_list(sorted(client.scopes)),
        "grant_types": dump_list(sorted(client.grant_types)),
        "resources": dump_list(sorted(client.resources)),
        "require_par": client.require_pushed_authorization_requests,
        "secret_hash": client.secret_hash,
        "jwks": dump_map(client.jwks),
        "enabled": client.enabled,
        "source": client.source,
        "may_introspect": client.may_introspect,
        "auth_policy": client.auth_policy,
        "exchange_subject_audiences": dump_list(sorted(client.exchange_subject_audiences)),
        "exchange_delegation_chains": client.exchange_delegation_chains,
        "statement_values": dump_map(client.statement_values),
    }


def _client(row: RowMapping) -> Client:
    return Client(
        client_id=row["client_id"],
        client_type=row["client_type"],
        auth_method=row["auth_method"],
        name=row["name"],
        redirect_uris=load_tuple(row["redirect_uris"]),
        scopes=frozenset(load_tuple(row["scopes"])),
        grant_types=frozenset(load_tuple(row["grant_types"])),
        resources=frozenset(load_tuple(row["resources"])),
        require_pushed_authorization_requests=row["require_par"],
        secret_hash=row["secret_hash"],
        jwks=load_map(row["jwks"]),
        enabled=row["enabled"],
        source=row["source"],
        may_introspect=row["may_introspect"],
        auth_policy=row["auth_policy"],
        exchange_subject_audiences=frozenset(load_tuple(row["exchange_subject_audiences"])),
        exchange_delegation_chains=row["exchange_delegation_chains"],
        statement_values=load_map(row["statement_values"]),
    )


class SqlClientStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def get(self, client_id: str) -> Client | None:
        async with self._db.connect() as conn:
            row = (
                (await conn.execute(select(clients).where(clients.c.client_id == client_id)))
                .mappings()
                .first()
            )
        return None if row is None else _client(row)

    async def list(self) -> list[Client]:
        async with self._db.connect() as conn:
            rows = (await conn.execute(select(clients).order_by(clients.c.client_id))).mappings()
            return [_client(row) for row in rows]

    async def create(
        self, client: Client, now: float, registration_token_hash: str | None = None
    ) -> None:
        try:
            async with self._db.connect() as conn:
                await conn.execute(
                    insert(clients).values(
                        client_id=client.client_id,
                        created_at=now,
                        updated_at=now,
                        registration_token_hash=registration_token_hash,
                        **_row(client),
                    )
                )
        except IntegrityError as exc:
            raise ClientExists(f"client {client.client_id!r} already exists") from exc

    async def update(self, client: Client, now: float) -> bool:
        async with self._db.connect() as conn:
            result = await conn.execute(
                update(clients)
                .where(clients.c.client_id == client.client_id)
                .values(updated_at=now, **_row(client))
            )
            return bool(result.rowcount)

    async def delete(self, client_id: str) -> bool:
        async with self._db.connect() as conn:
            result = await conn.execute(delete(clients).where(clients.c.client_id == client_id))
            return bool(result.rowcount)

    async def registration_token_hash(self, client_id: str) -> str | None:
        async with self._db.connect() as conn:
            value = await conn.scalar(
                select(clients.c.registration_token_hash).where(clients.c.client_id == client_id)
            )
            return None if value is None else str(value)
