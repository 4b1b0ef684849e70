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
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.accounts.levels import Policy
from bastion.accounts.records import User
from bastion.authserver.accounts import Accounts, describe
from bastion.authserver.server import AuthServer
from bastion.errors import (
    AccountRuleError,
    OAuthError,
    ResourceNotFound,
    UserExists,
    WeakPassword,
)
from bastion.web.oauth.common import auth_server, json_object
from bastion.web.problems import problem_response

Handler = Callable[[Request], Awaitable[Response]]


def _json(data: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _unauthorized(error: str, status: int) -> Response:
    header = f'Bearer realm="bastion-admin", error="{error}"'
    return problem_response(status, headers={"www-authenticate": header}, detail=error)


def admin(handler: Callable[[Request, Accounts], Awaitable[Response]]) -> Handler:
    async def endpoint(request: Request) -> Response:
        server = auth_server(request)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized("invalid_token", 401)
        try:
            claims = await server.access.verify(
                token.strip(), audience=f"{server.settings.issuer}/admin"
            )
        except OAuthError:
            return _unauthorized("invalid_token", 401)
        if "auth_time" in claims or "act" in claims or claims["sub"] != claims["client_id"]:
            # A user's token, or one exchanged for a service, never administers accounts.
            return _unauthorized("invalid_token", 401)
        if server.settings.accounts.admin_scope not in str(claims.get("scope", "")).split():
            return _unauthorized("insufficient_scope", 403)
        accounts = Accounts(server, actor=f"client:{claims['client_id']}")
        try:
            return await handler(request, accounts)
        except (WeakPassword, AccountRuleError) as exc:
            return problem_response(422, detail=str(exc))
        except UserExists:
            return problem_response(409, detail="a user with that username exists")

    return endpoint


async def _target(request: Request, server: AuthServer) -> User:
    user = await server.users.get(request.path_params["user_id"])
    if user is None:
        raise ResourceNotFound("no such user")
    return user


@admin
async def list_users(request: Request, accounts: Accounts) -> Response:
    return _json({"users": [describe(u) for u in await accounts.server.users.list()]})


@admin
async def create_user(request: Request, accounts: Accounts) -> Response:
    body = await json_object(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return problem_response(
            400,
            detail="username and password are required strings",
            errors=["/username", "/password"],
        )
    return _json(describe(await accounts.create(username, password)), 201)


@admin
async def show_user(request: Request, accounts: Accounts) -> Response:
    user = await _target(request, accounts.server)
    consents = await accounts.server.consents.of_subject(user.user_id)
    return _json(describe(user) | {"consents": {k: sorted(v) for k, v in consents.items()}})


@admin
async def delete_user(request: Request, accounts: Accounts) -> Response:
    user = await _target(request, accounts.server)
    await accounts.delete(user)
    return Response(status_code=204)


@admin
async def user_action(request: Request, accounts: Accounts) -> Response:
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
            return problem_response(
                400, detail="policy is password, mfa or passkey", errors=["/policy"]
            )
        await accounts.set_policy(user, policy)
        return _json({"ok": True, "auth_policy": policy.value})
    if action == "recovery-link":
        reset = body.get("reset_mfa", False)
        if not isinstance(reset, bool):
            return problem_response(400, detail="reset_mfa is a boolean", errors=["/reset_mfa"])
        return _json({"ok": True, "link": await accounts.recovery_link(user, reset_mfa=reset)})
    return problem_response(404, detail="no such action")


routes = [
    Route("/admin/users", list_users, methods=["GET"]),
    Route("/admin/users", create_user, methods=["POST"]),
    Route("/admin/users/{user_id}", show_user, methods=["GET"]),
    Route("/admin/users/{user_id}", delete_user, methods=["DELETE"]),
    Route("/admin/users/{user_id}/{action}", user_action, methods=["POST"]),
]
