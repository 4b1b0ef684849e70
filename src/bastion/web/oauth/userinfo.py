"""The UserInfo endpoint (OpenID Connect Core §5.3) with Bearer tokens (RFC 6750) and
DPoP-bound tokens (RFC 9449 §7)."""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.authserver.server import AuthServer
from bastion.errors import DpopError, OAuthError
from bastion.web.oauth.common import NO_STORE, oauth_json


def _challenge(
    server: AuthServer, error: str, description: str, status: int, *, dpop: bool = False
) -> Response:
    # RFC 6750 §3 and RFC 9449 §7.1: the error travels in WWW-Authenticate, under the
    # scheme the client should use.
    if dpop:
        headers = server.dpop.challenge(error)
    else:
        headers = {
            "www-authenticate": (
                f'Bearer realm="bastion", error="{error}", error_description="{description}"'
            )
        }
    return oauth_json({"error": error, "error_description": description}, status, headers)


async def userinfo(server: AuthServer, request: Request) -> Response:
    if "access_token" in request.query_params:
        # RFC 9700 §4.3.2 (and RFC 6750 §5.3): tokens in URLs leak through logs and Referer.
        return _challenge(server, "invalid_request", "tokens in the URL are not accepted", 400)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    scheme, token = scheme.lower(), token.strip()
    if scheme not in ("bearer", "dpop") or not token:
        # Both schemes are offered (RFC 9449 §7.1): one challenge each.
        return Response(
            status_code=401,
            headers={
                "www-authenticate": f'Bearer realm="bastion", DPoP algs="{server.dpop.algs}"',
                **NO_STORE,
            },
        )
    dpop = scheme == "dpop"
    try:
        claims = await server.access.verify(token)
    except OAuthError:
        return _challenge(server, "invalid_token", "the access token is invalid", 401, dpop=dpop)
    refusal = await _sender_refusal(server, request, claims, token, dpop)
    if refusal is not None:
        return refusal
    if "auth_time" not in claims or "act" in claims:
        # Only a token a user signed in for describes a user (not client credentials,
        # not an exchanged internal token).
        return _challenge(
            server, "invalid_token", "the access token does not represent a user", 401, dpop=dpop
        )
    if "openid" not in claims.get("scope", "").split():
        return _challenge(
            server, "insufficient_scope", "the openid scope is required", 403, dpop=dpop
        )
    body = {"sub": claims["sub"]}
    if "profile" in claims["scope"].split():
        user = await server.users.get(claims["sub"])
        if user is not None:
            body["preferred_username"] = user.username
    return oauth_json(body)


async def _sender_refusal(
    server: AuthServer, request: Request, claims: dict[str, Any], token: str, dpop: bool
) -> Response | None:
    """None when the token is presented as its binding requires (RFC 9449 §7)."""
    client = await server.clients.get(str(claims.get("client_id"))) if dpop else None
    try:
        await server.dpop.check_presentation(
            scheme="dpop" if dpop else "bearer",
            token=token,
            claims=claims,
            values=request.headers.getlist("dpop"),
            method=request.method,
            uri=f"{server.settings.issuer}/userinfo",
            nonce=server.dpop.nonce_required(client),
        )
    except DpopError as exc:
        return _challenge(server, exc.error, exc.description, 401, dpop=True)
    return None


def routes(server: AuthServer) -> list[Route]:
    return [Route("/userinfo", partial(userinfo, server), methods=["GET", "POST"])]
