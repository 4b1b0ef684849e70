"""The UserInfo endpoint (OpenID Connect Core §5.3) with Bearer tokens (RFC 6750)."""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.authserver.server import AuthServer
from bastion.errors import OAuthError
from bastion.web.oauth.common import oauth_json


def _challenge(error: str, description: str, status: int) -> Response:
    # RFC 6750 §3: the error travels in WWW-Authenticate.
    header = f'Bearer realm="bastion", error="{error}", error_description="{description}"'
    return oauth_json(
        {"error": error, "error_description": description}, status, {"www-authenticate": header}
    )


async def userinfo(server: AuthServer, request: Request) -> Response:
    if "access_token" in request.query_params:
        # RFC 9700 §4.3.2 (and RFC 6750 §5.3): tokens in URLs leak through logs and Referer.
        return _challenge("invalid_request", "tokens in the URL are not accepted", 400)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return Response(
            status_code=401,
            headers={"www-authenticate": 'Bearer realm="bastion"', "cache-control": "no-store"},
        )
    try:
        claims = await server.access.verify(token.strip())
    except OAuthError:
        return _challenge("invalid_token", "the access token is invalid", 401)
    if "auth_time" not in claims or "act" in claims:
        # Only a token a user signed in for describes a user (not client credentials,
        # not an exchanged internal token).
        return _challenge("invalid_token", "the access token does not represent a user", 401)
    if "openid" not in claims.get("scope", "").split():
        return _challenge("insufficient_scope", "the openid scope is required", 403)
    body = {"sub": claims["sub"]}
    if "profile" in claims["scope"].split():
        user = await server.users.get(claims["sub"])
        if user is not None:
            body["preferred_username"] = user.username
    return oauth_json(body)


def routes(server: AuthServer) -> list[Route]:
    return [Route("/userinfo", partial(userinfo, server), methods=["GET", "POST"])]
