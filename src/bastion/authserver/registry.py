"""Where clients come from: the configuration file first, then the database."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson

from bastion.authserver.settings import ClientSettings
from bastion.authserver.stores import ClientStore
from bastion.errors import ClientMetadataError, ConfigError, ConfigProblem
from bastion.oauth.clients import (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    REFRESH_TOKEN,
    Branding,
    Client,
    check_client,
)


def client_from_settings(declared: ClientSettings, index: int) -> Client:
    """A client declared in bastion.toml, checked by the same rules as any other."""
    where = f"oauth.clients.{index}"
    public = declared.type == "public"
    default_grants = (AUTHORIZATION_CODE, REFRESH_TOKEN) if public else (CLIENT_CREDENTIALS,)
    jwks = _read_jwks(declared.jwks_file, where) if declared.jwks_file else None
    auth_method = declared.auth_method or (
        "none" if public else ("private_key_jwt" if jwks else "client_secret_basic")
    )
    client = Client(
        client_id=declared.client_id,
        client_type=declared.type,
        auth_method=auth_method,
        name=declared.name or declared.client_id,
        redirect_uris=declared.redirect_uris,
        scopes=frozenset(declared.scopes),
        grant_types=frozenset(declared.grant_types or default_grants),
        resources=frozenset(declared.resources),
        require_pushed_authorization_requests=declared.require_pushed_authorization_requests,
        dpop_bound_access_tokens=declared.dpop_bound_access_tokens,
        require_dpop_nonce=declared.require_dpop_nonce,
        secret_hash=declared.secret_sha256,
        jwks=jwks,
        source="config",
        may_introspect=declared.introspection,
        auth_policy=declared.auth_policy,
        exchange_subject_audiences=frozenset(declared.exchange_subject_audiences),
        exchange_delegation_chains=declared.exchange_delegation_chains,
        branding=Branding(
            logo_uri=declared.logo_uri,
            client_uri=declared.client_uri,
            policy_uri=declared.policy_uri,
            tos_uri=declared.tos_uri,
            accent_color=declared.accent_color,
        ),
    )
    try:
        return check_client(client)
    except ClientMetadataError as exc:
        raise ConfigError([ConfigProblem(f"{where}.{exc.field}", str(exc))]) from exc


def _read_jwks(path: Path, where: str) -> dict[str, object]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    f"{where}.jwks_file", f"cannot read a JWK Set from {path}: {type(exc).__name__}"
                )
            ]
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ConfigError([ConfigProblem(f"{where}.jwks_file", "not a JWK Set")])
    for key in data["keys"]:
        if isinstance(key, dict) and "d" in key:
            raise ConfigError(
                [ConfigProblem(f"{where}.jwks_file", "contains private key material")]
            )
    return data


class ClientRegistry:
    """Declared clients are fixed by the file; the CLI and registration manage the rest."""

    def __init__(self, declared: Iterable[Client], store: ClientStore) -> None:
        self.declared = {client.client_id: client for client in declared}
        self.store = store

    async def get(self, client_id: str) -> Client | None:
        if client_id in self.declared:
            return self.declared[client_id]
        return await self.store.get(client_id)

    async def all(self) -> list[Client]:
        stored = [c for c in await self.store.list() if c.client_id not in self.declared]
        return sorted([*self.declared.values(), *stored], key=lambda c: c.client_id)
