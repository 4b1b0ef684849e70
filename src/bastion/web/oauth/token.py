"""The token endpoint (RFC 6749 §3.2): POST only, never cached."""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.audit import AuditEvent, Outcome
from bastion.authserver.grant_types import HANDLERS
from bastion.authserver.server import AuthServer
from bastion.errors import OAuthError
from bastion.oauth.refresh import Instance
from bastion.web.oauth.common import authenticate, form, oauth_error, oauth_json


async def token(server: AuthServer, request: Request) -> Response:
    try:
        params = await form(request)
        client = await authenticate(server, request, params)
        grant_type = params.require("grant_type")
        handler = HANDLERS.get(grant_type)
        if handler is None:
            raise OAuthError("unsupported_grant_type", "this grant type is not supported")
        if not client.allows_grant(grant_type):
            server.grants.audit.emit(
                AuditEvent(
                    "oauth.token.refused",
                    Outcome.DENIED,
                    actor=f"client:{client.client_id}",
                    details={"reason": "grant type not allowed", "grant_type": grant_type},
                )
            )
            raise OAuthError("unauthorized_client", "this client may not use this grant type")
        return oauth_json(await handler(server.grants, client, params, _instance(request)))
    except OAuthError as exc:
        # One record for every refusal, whatever stage raised it (the grants add detail).
        server.grants.audit.emit(
            AuditEvent(
                "oauth.token.refused",
                Outcome.DENIED,
                actor="client",
                details={"error": exc.error, "reason": exc.description},
            )
        )
        return oauth_error(exc)


def _instance(request: Request) -> Instance:
    """What tells one app instance from another here: its address (behind a trusted proxy,
    the forwarded one) and its User-Agent. Recorded at rotation for the refresh grace."""
    address = request.client.host if request.client else ""
    return Instance.of(address=address, user_agent=request.headers.get("user-agent", ""))


def routes(server: AuthServer) -> list[Route]:
    return [Route("/token", partial(token, server), methods=["POST"])]
