"""The admin API for users: the same operations as ``bastion users``, over HTTP.

Callers present a Bastion access token obtained with client credentials (no user in it),
whose scope holds ``accounts.admin_scope`` (default ``bastion:admin``) and whose audience
is ``<issuer>/admin`` (RFC 8707: declare that resource on the admin client). Anything else
answers 401 or 403 with an RFC 6750 challenge. Answers are JSON; errors are problem+json
(bodies that are not a JSON object: 415 or 400; unknown users: 404).
Users are addressed by their opaque ``user_id``, which never changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.accounts.levels import Policy
from bastion.accounts.passwords import WeakPassword
from bastion.accounts.records import User, UserExists
from bastion.authserver.accounts import AccountRuleError, Accounts, describe
from bastion.authserver.server import AuthServer
from bastion.errors import OAuthError, ProblemError
from bastion.web.oauth.common import json_object
from bastion.web.problems import http_problem

AdminHandler = Callable[[Accounts, Request], Awaitable[Response]]


def _json(data: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _refused(error: str, status: int) -> ProblemError:
    header = f'Bearer realm="bastion-admin", error="{error}"'
    return http_problem(status, error, headers={"www-authenticate": header})


async def _administrator(server: AuthServer, request: Request) -> Accounts:
    """The accounts service acting for the calling client, once its token says it may
    administer users (RFC 6750 §3.1 errors otherwise)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _refused("invalid_token", 401)
    try:
        claims = await server.access.verify(
            token.strip(), audience=f"{server.settings.issuer}/admin"
        )
    except OAuthError as exc:
        raise _refused("invalid_token", 401) from exc
    if "auth_time" in claims or "act" in claims or claims["sub"] != claims["client_id"]:
        # A user's token, or one exchanged for a service, never administers accounts.
        raise _refused("invalid_token", 401)
    if server.settings.accounts.admin_scope not in str(claims.get("scope", "")).split():
        raise _refused("insufficient_scope", 403)
    return Accounts(server, actor=f"client:{claims['client_id']}")


def admin_route(path: str, handler: AdminHandler, server: AuthServer, method: str) -> Route:
    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        accounts = await _administrator(server, request)
        try:
            return await handler(accounts, request)
        except (WeakPassword, AccountRuleError) as exc:
            raise http_problem(422, str(exc)) from exc
        except UserExists as exc:
            raise http_problem(409, "a user with that username exists") from exc

    return Route(path, endpoint, methods=[method])


async def _target(request: Request, server: AuthServer) -> User:
    user = await server.users.get(request.path_params["user_id"])
    if user is None:
        raise ProblemError("no such user", status=404, title="Not Found")
    return user


async def list_users(accounts: Accounts, _request: Request) -> Response:
    return _json({"users": [describe(u) for u in await accounts.server.users.list()]})


async def create_user(accounts: Accounts, request: Request) -> Response:
    body = await json_object(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise http_problem(
            400,
            "username and password are required strings",
            errors=["/username", "/password"],
        )
    return _json(describe(await accounts.create(username, password)), 201)


async def show_user(accounts: Accounts, request: Request) -> Response:
    user = await _target(request, accounts.server)
    consents = await accounts.server.consents.of_subject(user.user_id)
    return _json(describe(user) | {"consents": {k: sorted(v) for k, v in consents.items()}})


async def delete_user(accounts: Accounts, request: Request) -> Response:
    user = await _target(request, accounts.server)
    await accounts.delete(user)
    return Response(status_code=204)


async def user_action(accounts: Accounts, request: Request) -> Response:
    user = await _target(request, accounts.server)
    action = request.path_params["action"]
    if action in ("disable", "enable"):
        await accounts.set_enabled(user, action == "enable")
        return _json({"ok": True, "enabled": action == "enable"})
    if action == "revoke-sessions":
        return _json({"ok": True, **await accounts.revoke_all(user)})
    body = await json_object(request)
    if action == "policy":
        try:
            policy = Policy(str(body.get("policy")))
        except ValueError:
            raise http_problem(
                400, "policy is password, mfa or passkey", errors=["/policy"]
            ) from None
        await accounts.set_policy(user, policy)
        return _json({"ok": True, "auth_policy": policy.value})
    if action == "recovery-link":
        reset = body.get("reset_mfa", False)
        if not isinstance(reset, bool):
            raise http_problem(400, "reset_mfa is a boolean", errors=["/reset_mfa"])
        return _json({"ok": True, "link": await accounts.recovery_link(user, reset_mfa=reset)})
    raise http_problem(404, "no such action")


def routes(server: AuthServer) -> list[Route]:
    return [
        admin_route("/admin/users", list_users, server, "GET"),
        admin_route("/admin/users", create_user, server, "POST"),
        admin_route("/admin/users/{user_id}", show_user, server, "GET"),
        admin_route("/admin/users/{user_id}", delete_user, server, "DELETE"),
        admin_route("/admin/users/{user_id}/{action}", user_action, server, "POST"),
    ]
