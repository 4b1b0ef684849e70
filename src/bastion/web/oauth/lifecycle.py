"""Revocation (RFC 7009) and introspection (RFC 7662) endpoints."""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.authserver import lifecycle
from bastion.authserver.server import AuthServer
from bastion.errors import OAuthError
from bastion.oauth.client_auth import invalid_client
from bastion.web.oauth.common import authenticate, form, oauth_error, oauth_json


async def revoke(server: AuthServer, request: Request) -> Response:
    try:
        params = await form(request)
        client = await authenticate(server, request, params)
        await lifecycle.revoke(
            server.grants,
            client,
            params.require("token"),
            params.get("token_type_hint"),
        )
        return oauth_json({})
    except OAuthError as exc:
        return oauth_error(exc)


async def introspect(server: AuthServer, request: Request) -> Response:
    try:
        params = await form(request)
        client = await authenticate(server, request, params)
        if not client.may_introspect:
            # RFC 7662 §4: only resource servers the operator designated may learn about
            # tokens; being a confidential client is not enough.
            raise invalid_client("client may not introspect")
        body = await lifecycle.introspect(server.grants, client, params.require("token"))
        return oauth_json(body)
    except OAuthError as exc:
        return oauth_error(exc)


def routes(server: AuthServer) -> list[Route]:
    return [
        Route("/revoke", partial(revoke, server), methods=["POST"]),
        Route("/introspect", partial(introspect, server), methods=["POST"]),
    ]
