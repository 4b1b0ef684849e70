"""Revocation (RFC 7009) and introspection (RFC 7662) endpoints."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.authserver import lifecycle
from bastion.errors import OAuthError
from bastion.oauth.client_auth import invalid_client
from bastion.web.oauth.common import auth_server, authenticate, form, oauth_error, oauth_json


async def revoke(request: Request) -> Response:
    try:
        params = await form(request)
        client = await authenticate(request, params)
        await lifecycle.revoke(
            auth_server(request).grants,
            client,
            params.require("token"),
            params.get("token_type_hint"),
        )
        return oauth_json({})
    except OAuthError as exc:
        return oauth_error(exc)


async def introspect(request: Request) -> Response:
    try:
        params = await form(request)
        client = await authenticate(request, params)
        if not client.may_introspect:
            # RFC 7662 §4: only resource servers the operator designated may learn about
            # tokens; being a confidential client is not enough.
            raise invalid_client("client may not introspect")
        body = await lifecycle.introspect(
            auth_server(request).grants, client, params.require("token")
        )
        return oauth_json(body)
    except OAuthError as exc:
        return oauth_error(exc)


routes = [
    Route("/revoke", revoke, methods=["POST"]),
    Route("/introspect", introspect, methods=["POST"]),
]
