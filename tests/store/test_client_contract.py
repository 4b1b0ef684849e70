"""The ClientStore contract (clients created at run time), run against every
implementation."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bastion.authserver.stores import ClientStore
from bastion.errors import ClientExists
from bastion.oauth.clients import Client, hash_secret

NOW = 1_700_000_000.0


def service() -> Client:
    return Client(
        client_id="svc",
        client_type="confidential",
        auth_method="private_key_jwt",
        grant_types=frozenset({"client_credentials"}),
        jwks={"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}]},
        scopes=frozenset({"a", "b"}),
        resources=frozenset({"https://api"}),
        secret_hash=hash_secret("s"),
        name="Service",
        exchange_subject_audiences=frozenset({"https://api", "https://app"}),
        exchange_delegation_chains=True,
        statement_values={"client_name": "Service", "scope": "a b", "grant_types": ["x"]},
    )


async def test_clients_round_trip(client_store: ClientStore) -> None:
    client = service()
    await client_store.create(client, NOW, registration_token_hash="h")
    assert await client_store.get("svc") == client
    assert await client_store.registration_token_hash("svc") == "h"
    with pytest.raises(ClientExists):
        await client_store.create(client, NOW)
    assert await client_store.update(replace(client, enabled=False), NOW)
    fetched = await client_store.get("svc")
    assert fetched is not None
    assert not fetched.enabled
    assert [c.client_id for c in await client_store.list()] == ["svc"]
    assert await client_store.delete("svc")
    assert await client_store.get("svc") is None


async def test_a_public_app_round_trips_with_its_defaults(client_store: ClientStore) -> None:
    app = Client(
        client_id="app",
        client_type="public",
        auth_method="none",
        redirect_uris=("com.example.app:/cb", "https://e.example/cb"),
    )
    await client_store.create(app, NOW)
    assert await client_store.get("app") == app
    assert await client_store.registration_token_hash("app") is None


async def test_list_is_ordered_and_absent_clients_change_nothing(
    client_store: ClientStore,
) -> None:
    for client_id in ("c", "a", "b"):
        await client_store.create(replace(service(), client_id=client_id), NOW)
    assert [c.client_id for c in await client_store.list()] == ["a", "b", "c"]
    assert await client_store.get("absent") is None
    assert not await client_store.update(replace(service(), client_id="absent"), NOW)
    assert not await client_store.delete("absent")
    assert await client_store.registration_token_hash("absent") is None
