"""The admin API for users and devices: the operations of ``bastion users`` and
``bastion devices``, over HTTP.

Callers present a Bastion access token obtained with client credentials (no user in it),
whose scope holds ``accounts.admin_scope`` (default ``bastion:admin``) and whose audience
is ``<issuer>/admin`` (RFC 8707: declare that resource on the admin client). Anything else
answers 401 or 403 with an RFC 6750 challenge. Answers are JSON; errors are problem+json.
Users and devices are addressed by their opaque ids (``user_id``, ``device_id``), which
never change.

What each operation takes and answers is declared once in ``admin_schema``; the handlers
validate and answer through those models, and ``/openapi/admin.json`` is made from them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.accounts.records import User
from bastion.authserver.accounts import Accounts, describe
from bastion.authserver.devices import describe as describe_device
from bastion.authserver.devices import revoke_device as revoke
from bastion.authserver.server import AuthServer
from bastion.device.records import Device
from bastion.errors import (
    AccountRuleError,
    DpopError,
    OAuthError,
    ResourceNotFound,
    UserExists,
    WeakPassword,
)
from bastion.web.accounts import admin_schema as schema
from bastion.web.oauth.common import json_object
from bastion.web.openapi import Operation, document_route
from bastion.web.problems import problem_response

AdminHandler = Callable[[Accounts, Request], Awaitable[Response]]


def _refused(exc: OAuthError) -> Response:
    """RFC 6750 §3.1: the error code in the challenge and as the problem's detail."""
    header = f'Bearer realm="bastion-admin", error="{exc.error}"'
    return problem_response(exc.status, headers={"www-authenticate": header}, detail=exc.error)


def _refused_proof(server: AuthServer, exc: DpopError) -> Response:
    """RFC 9449 §7.1: refusals about the binding are challenged under the DPoP scheme."""
    return problem_response(401, headers=server.dpop.challenge(exc.error), detail=exc.error)


def _invalid_token() -> OAuthError:
    return OAuthError("invalid_token", "not an admin token", status=401)


async def _administrator(server: AuthServer, request: Request) -> Accounts:
    """The accounts service acting for the calling client, once its token says it may
    administer users; ``OAuthError`` (RFC 6750 §3.1 codes) otherwise."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    scheme, token = scheme.lower(), token.strip()
    if scheme not in ("bearer", "dpop") or not token:
        raise _invalid_token()
    try:
        claims = await server.access.verify(token, audience=f"{server.settings.issuer}/admin")
    except OAuthError as exc:
        raise _invalid_token() from exc
    # RFC 9449 §7: a DPoP-bound admin token needs its proof; never as a bearer token.
    await server.dpop.check_presentation(
        scheme=scheme,
        token=token,
        claims=claims,
        values=request.headers.getlist("dpop"),
        method=request.method,
        uri=f"{server.settings.issuer}{request.url.path}",
        nonce=await server.dpop.nonce_required_for(str(claims.get("client_id"))),
    )
    if "auth_time" in claims or "act" in claims or claims["sub"] != claims["client_id"]:
        # A user's token, or one exchanged for a service, never administers accounts.
        raise _invalid_token()
    if server.settings.accounts.admin_scope not in str(claims.get("scope", "")).split():
        raise OAuthError("insufficient_scope", "the admin scope is missing", status=403)
    return Accounts(server, actor=f"client:{claims['client_id']}")


def admin_route(operation: Operation, handler: AdminHandler, server: AuthServer) -> Route:
    """The route of one declared operation (``admin_schema``), for admin tokens only: the
    boundary that answers refused tokens and refused account changes."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            accounts = await _administrator(server, request)
        except OAuthError as exc:
            return _refused(exc)
        except DpopError as exc:
            return _refused_proof(server, exc)
        try:
            return await handler(accounts, request)
        except (WeakPassword, AccountRuleError) as exc:
            return problem_response(422, detail=str(exc))
        except UserExists:
            return problem_response(409, detail="a user with that username exists")

    return Route(operation.path, endpoint, methods=[operation.method])


def _answer(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def _user(user: User) -> schema.User:
    return schema.User.model_validate(describe(user))


async def _target(request: Request, server: AuthServer) -> User:
    user = await server.users.get(request.path_params["user_id"])
    if user is None:
        raise ResourceNotFound("no such user")
    return user


async def list_users(accounts: Accounts, _request: Request) -> Response:
    users = await accounts.server.users.list()
    return _answer(schema.UserList(users=[_user(u) for u in users]))


async def create_user(accounts: Accounts, request: Request) -> Response:
    new = schema.validated(schema.NewUser, await json_object(request))
    return _answer(_user(await accounts.create(new.username, new.password)), 201)


async def show_user(accounts: Accounts, request: Request) -> Response:
    user = await _target(request, accounts.server)
    consents = await accounts.server.consents.of_subject(user.user_id)
    detail = describe(user) | {"consents": {k: sorted(v) for k, v in consents.items()}}
    return _answer(schema.UserDetail.model_validate(detail))


async def delete_user(accounts: Accounts, request: Request) -> Response:
    user = await _target(request, accounts.server)
    await accounts.delete(user)
    return Response(status_code=204)


async def disable_user(accounts: Accounts, request: Request) -> Response:
    await accounts.set_enabled(await _target(request, accounts.server), False)
    return _answer(schema.Enabled(ok=True, enabled=False))


async def enable_user(accounts: Accounts, request: Request) -> Response:
    await accounts.set_enabled(await _target(request, accounts.server), True)
    return _answer(schema.Enabled(ok=True, enabled=True))


async def revoke_sessions(accounts: Accounts, request: Request) -> Response:
    revoked = await accounts.revoke_all(await _target(request, accounts.server))
    return _answer(schema.Revoked(ok=True, **revoked))


async def set_policy(accounts: Accounts, request: Request) -> Response:
    user = await _target(request, accounts.server)
    change = schema.validated(schema.PolicyChange, await json_object(request))
    await accounts.set_policy(user, change.policy)
    return _answer(schema.PolicySet(ok=True, auth_policy=change.policy))


async def recovery_link(accounts: Accounts, request: Request) -> Response:
    user = await _target(request, accounts.server)
    asked = schema.validated(schema.RecoveryLinkRequest, await json_object(request))
    link = await accounts.recovery_link(user, reset_mfa=asked.reset_mfa)
    return _answer(schema.RecoveryLink(ok=True, link=link))


def _device(device: Device) -> schema.Device:
    return schema.Device.model_validate(describe_device(device))


async def _device_target(request: Request, server: AuthServer) -> Device:
    device = await server.devices.get(request.path_params["device_id"])
    if device is None:
        raise ResourceNotFound("no such device")
    return device


async def list_devices(accounts: Accounts, request: Request) -> Response:
    query = schema.validated(schema.DeviceQuery, dict(request.query_params))
    found = await accounts.server.devices.list_devices(
        user_id=query.user_id,
        client_id=query.client_id,
        include_revoked=query.include_revoked,
        limit=query.limit,
    )
    return _answer(schema.DeviceList(devices=[_device(d) for d in found]))


async def show_device(accounts: Accounts, request: Request) -> Response:
    return _answer(_device(await _device_target(request, accounts.server)))


async def revoke_device(accounts: Accounts, request: Request) -> Response:
    device = await _device_target(request, accounts.server)
    asked = schema.validated(schema.DeviceRevocationRequest, await json_object(request))
    done = await revoke(accounts.server, device.device_id, asked.reason, accounts.actor)
    return _answer(
        schema.DeviceRevoked(
            ok=True,
            device_id=device.device_id,
            already_revoked=done.already_revoked,
            families=done.families,
        )
    )


async def no_device_action(accounts: Accounts, request: Request) -> Response:
    await _device_target(request, accounts.server)
    raise ResourceNotFound("no such action")


async def no_such_action(accounts: Accounts, request: Request) -> Response:
    await _target(request, accounts.server)
    raise ResourceNotFound("no such action")


def routes(server: AuthServer) -> list[Route]:
    handlers: list[tuple[Operation, AdminHandler]] = [
        (schema.LIST_USERS, list_users),
        (schema.CREATE_USER, create_user),
        (schema.SHOW_USER, show_user),
        (schema.DELETE_USER, delete_user),
        (schema.DISABLE_USER, disable_user),
        (schema.ENABLE_USER, enable_user),
        (schema.REVOKE_SESSIONS, revoke_sessions),
        (schema.SET_POLICY, set_policy),
        (schema.RECOVERY_LINK, recovery_link),
        (schema.LIST_DEVICES, list_devices),
        (schema.SHOW_DEVICE, show_device),
        (schema.REVOKE_DEVICE, revoke_device),
    ]
    # An action that is not declared is still answered only to administrators.
    fallback = Operation("POST", f"{schema.USER}/{{action}}", "", "", {})
    device_fallback = Operation("POST", f"{schema.DEVICE}/{{action}}", "", "", {})
    return [
        *(admin_route(operation, handler, server) for operation, handler in handlers),
        admin_route(fallback, no_such_action, server),
        admin_route(device_fallback, no_device_action, server),
        document_route("/openapi/admin.json", schema.ADMIN_API, server.settings.issuer),
    ]
