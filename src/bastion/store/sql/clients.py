"""Clients created at run time in SQL (``bastion.authserver.stores.ClientStore``)."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.engine import RowMapping

from bastion.errors import ClientExists
from bastion.oauth.clients import Branding, Client
from bastion.store.sql.codec import dump_list, dump_map, load_map, load_tuple
from bastion.store.sql.database import Database
from bastion.store.sql.rows import Rows
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
        "dpop_bound": client.dpop_bound_access_tokens,
        "dpop_nonce": client.require_dpop_nonce,
        "secret_hash": client.secret_hash,
        "jwks": dump_map(client.jwks),
        "enabled": client.enabled,
        "source": client.source,
        "may_introspect": client.may_introspect,
        "auth_policy": client.auth_policy,
        "exchange_subject_audiences": dump_list(sorted(client.exchange_subject_audiences)),
        "exchange_delegation_chains": client.exchange_delegation_chains,
        "statement_values": dump_map(client.statement_values),
        "branding": dump_map(client.branding.to_metadata() or None),
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
        dpop_bound_access_tokens=row["dpop_bound"],
        require_dpop_nonce=row["dpop_nonce"],
        secret_hash=row["secret_hash"],
        jwks=load_map(row["jwks"]),
        enabled=row["enabled"],
        source=row["source"],
        may_introspect=row["may_introspect"],
        auth_policy=row["auth_policy"],
        exchange_subject_audiences=frozenset(load_tuple(row["exchange_subject_audiences"])),
        exchange_delegation_chains=row["exchange_delegation_chains"],
        statement_values=load_map(row["statement_values"]),
        branding=Branding.from_metadata(load_map(row["branding"])),
    )


class SqlClientStore:
    def __init__(self, database: Database) -> None:
        self._rows = Rows(database)

    async def get(self, client_id: str) -> Client | None:
        return await self._rows.one(
            select(clients).where(clients.c.client_id == client_id), _client
        )

    async def list(self) -> list[Client]:
        return await self._rows.all(select(clients).order_by(clients.c.client_id), _client)

    async def create(
        self, client: Client, now: float, registration_token_hash: str | None = None
    ) -> None:
        if not await self._rows.insert_new(
            clients,
            client_id=client.client_id,
            created_at=now,
            updated_at=now,
            registration_token_hash=registration_token_hash,
            **_row(client),
        ):
            raise ClientExists(f"client {client.client_id!r} already exists")

    async def update(self, client: Client, now: float) -> bool:
        return bool(
            await self._rows.run(
                update(clients)
                .where(clients.c.client_id == client.client_id)
                .values(updated_at=now, **_row(client))
            )
        )

    async def delete(self, client_id: str) -> bool:
        return bool(await self._rows.run(delete(clients).where(clients.c.client_id == client_id)))

    async def registration_token_hash(self, client_id: str) -> str | None:
        value = await self._rows.value(
            select(clients.c.registration_token_hash).where(clients.c.client_id == client_id)
        )
        return None if value is None else str(value)
