"""Dynamic registration endpoints: POST /register (RFC 7591), and GET / PUT / DELETE
/register/{client_id} with the registration access token (RFC 7592).

Bodies are validated and answers built with the models of ``registration_schema``, from
which ``/openapi/registration.json`` is made; the registration core decides the rest.
"""

from __future__ import annotations

import hmac
import secrets
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bastion.audit import AuditEvent, Outcome
from bastion.authserver.registration import (
    client_from_metadata,
    initial_token_ok,
    load_statement_keys,
    new_client_id,
    token_hash,
    updated,
    verify_statement,
)
from bastion.authserver.server import AuthServer
from bastion.device.service import DeviceTrust
from bastion.errors import OAuthError, ProblemError, ResourceNotFound
from bastion.oauth.clients import CLIENT_ID, Client
from bastion.web.oauth import installation
from bastion.web.oauth import registration_schema as schema
from bastion.web.oauth.common import json_object, oauth_error, oauth_json
from bastion.web.openapi import document_route


def _enabled(server: AuthServer) -> None:
    if not server.settings.oauth.registration.enabled:
        # Deny by default: an endpoint that is not enabled does not exist.
        raise ResourceNotFound("Not Found")


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        return await json_object(request)
    except ProblemError as exc:
        # RFC 7591 §3.2.2: metadata problems are invalid_client_metadata.
        raise OAuthError("invalid_client_metadata", exc.detail) from exc


def _information(server: AuthServer, client: Client) -> dict[str, Any]:
    metadata = client.to_metadata()
    return {
        "client_id": client.client_id,
        "client_name": metadata["client_name"],
        "redirect_uris": metadata["redirect_uris"],
        "token_endpoint_auth_method": client.auth_method,
        "grant_types": metadata["grant_types"],
        "response_types": metadata["response_types"],
        "scope": metadata["scope"],
        "jwks": metadata["jwks"],
        "dpop_bound_access_tokens": client.dpop_bound_access_tokens,
        # An installation's client (attested registration) names its app.
        "software_id": (client.statement_values or {}).get("software_id"),
        "registration_client_uri": f"{server.settings.issuer}/register/{client.client_id}",
        **client.branding.to_metadata(),
    }


def _view(server: AuthServer, client: Client) -> dict[str, Any]:
    return schema.ClientInformation.model_validate(_information(server, client)).model_dump(
        mode="json", exclude_none=True
    )


def _unauthorized(description: str) -> Response:
    return oauth_json(
        {"error": "invalid_token", "error_description": description},
        401,
        {"www-authenticate": 'Bearer realm="bastion", error="invalid_token"'},
    )


async def register(server: AuthServer, trust: DeviceTrust | None, request: Request) -> Response:
    _enabled(server)
    settings = server.settings.oauth.registration
    clock = server.grants.clock
    try:
        body = await _json_body(request)
    except OAuthError as exc:
        return oauth_error(exc)
    if installation.wanted(server, trust, body):
        # A verified attestation in place of the initial access token (docs/device-trust.md).
        assert trust is not None
        return await installation.register_installation(server, trust, request, body)
    try:
        statement = _statement(server, body.get("software_statement"))
        if statement is None and not initial_token_ok(
            _bearer(request), server.settings.secrets.registration_token
        ):
            _audit(server, "oauth.registration.refused", Outcome.DENIED, reason="no credential")
            return _unauthorized("an initial access token or a software statement is required")
        client, secret = client_from_metadata(
            _metadata(schema.ClientMetadata, body),
            client_id=new_client_id(),
            statement=statement,
            default_scopes=settings.default_scopes,
        )
    except OAuthError as exc:
        _audit(server, "oauth.registration.refused", Outcome.DENIED, reason=exc.description)
        return oauth_error(exc)
    access_token = secrets.token_urlsafe(32)
    now = clock.now()
    await server.clients.store.create(client, now, registration_token_hash=token_hash(access_token))
    _audit(
        server,
        "oauth.registration.created",
        Outcome.SUCCESS,
        client_id=client.client_id,
        statement=statement.get("iss") if statement else None,
    )
    registered = schema.Registration.model_validate(
        _information(server, client)
        | {
            "client_id_issued_at": int(now),
            "registration_access_token": access_token,
            "client_secret": secret,
            "client_secret_expires_at": None if secret is None else 0,
        }
    )
    return oauth_json(registered.model_dump(mode="json", exclude_none=True), 201)


def _metadata(model: type[schema.ClientMetadata], body: dict[str, Any]) -> dict[str, Any]:
    """The metadata for the registration core: validated, without the statement (which
    was verified on its own)."""
    metadata = schema.metadata(model, body)
    metadata.pop("software_statement", None)
    return metadata


async def _managed(request: Request, server: AuthServer) -> Client | None:
    """The client named in the path, if the request carries its registration token."""
    client_id = request.path_params["client_id"]
    if not CLIENT_ID.fullmatch(client_id):
        return None
    presented = _bearer(request)
    stored_hash = await server.clients.store.registration_token_hash(client_id)
    if (
        presented is None
        or stored_hash is None
        or not hmac.compare_digest(token_hash(presented), stored_hash)
    ):
        return None
    return await server.clients.store.get(client_id)


async def manage(server: AuthServer, request: Request) -> Response:
    _enabled(server)
    client = await _managed(request, server)
    if client is None:
        # RFC 7592 §2: unknown client and wrong token are the same 401.
        return _unauthorized("the registration access token is invalid")
    if request.method == "GET":
        return oauth_json(_view(server, client))
    if request.method == "DELETE":
        await server.access.revoke_families(
            "client_deleted", f"client:{client.client_id}", client_id=client.client_id
        )
        await server.clients.store.delete(client.client_id)
        _audit(server, "oauth.registration.deleted", Outcome.SUCCESS, client_id=client.client_id)
        return Response(status_code=204, headers={"cache-control": "no-store"})
    try:
        body = await _json_body(request)
        statement = _statement(server, body.get("software_statement"))
        changed = updated(client, _metadata(schema.ClientUpdate, body), statement)
    except OAuthError as exc:
        _audit(
            server,
            "oauth.registration.refused",
            Outcome.DENIED,
            client_id=client.client_id,
            reason=exc.description,
        )
        return oauth_error(exc)
    await server.clients.store.update(changed, server.grants.clock.now())
    _audit(
        server,
        "oauth.registration.updated",
        Outcome.SUCCESS,
        client_id=client.client_id,
        statement=statement.get("iss") if statement else None,
    )
    return oauth_json(_view(server, changed))


def _statement(server: AuthServer, presented: object) -> dict[str, Any] | None:
    """The claims of a software statement sent with a request, if it is the operator's."""
    if presented is None:
        return None
    if not isinstance(presented, str):
        raise OAuthError("invalid_software_statement", "must be a JWT string")
    keys = load_statement_keys(server.settings.oauth.registration.software_statement_jwks_file)
    return verify_statement(presented, keys, server.grants.clock.now())


def _audit(server: AuthServer, action: str, outcome: Outcome, **details: object) -> None:
    server.grants.audit.emit(AuditEvent(action, outcome, actor="registration", details=details))


def routes(server: AuthServer, trust: DeviceTrust | None = None) -> list[BaseRoute]:
    endpoints: list[BaseRoute] = [
        Route(schema.REGISTER.path, partial(register, server, trust), methods=["POST"]),
        Route(schema.READ.path, partial(manage, server), methods=["GET", "PUT", "DELETE"]),
    ]
    if server.settings.oauth.registration.enabled:
        # Deny by default: no document describes endpoints that do not exist.
        endpoints.append(
            document_route(
                "/openapi/registration.json", schema.REGISTRATION_API, server.settings.issuer
            )
        )
    return endpoints
