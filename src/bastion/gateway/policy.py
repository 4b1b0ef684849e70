"""Function-level and parameter-level authorization of one request (no I/O).

``authorize`` raises ``Forbidden`` (403, RFC 6750 §3.1 ``insufficient_scope``) when the
caller lacks a scope, role, claim or client; ``StepUpRequired`` with the RFC 9470
challenge when the authentication is too weak or too old. ``Hidden`` (404) is how the
object-level rules refuse (OWASP API1, BOLA), so that refusals do not reveal whether
the object exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.accounts.stepup import Requirement, challenge
from bastion.errors import Forbidden, StepUpRequired
from bastion.gateway.caller import REALM, Caller

if TYPE_CHECKING:
    from bastion.gateway.settings import RouteSettings


def _forbidden(reason: str, scopes: tuple[str, ...] = ()) -> Forbidden:
    header = f'{REALM}, error="insufficient_scope"'
    if scopes:
        header += f', scope="{" ".join(scopes)}"'
    return Forbidden(
        "The access token does not allow this request.",
        reason,
        headers={"www-authenticate": header},
    )


def authorize(route: RouteSettings, caller: Caller, now: float) -> None:
    # Scopes, apps, roles and claims depend on the token and the route alone: checked once
    # per verified token and route (the memo keeps the route, so its id cannot be reused).
    key = ("authorized", id(route))
    if caller.memo.get(key) is not route:
        _authorize_token(route, caller)
        caller.memo[key] = route
    if route.acr is not None or route.max_auth_age is not None:
        requirement = Requirement(
            acr=route.acr,
            max_age=None if route.max_auth_age is None else int(route.max_auth_age),
        )
        header = challenge(caller.claims, requirement, now)
        if header is not None:
            raise StepUpRequired(
                "A stronger or more recent sign-in is required.",
                "authentication level",
                headers={"www-authenticate": header},
            )


def _authorize_token(route: RouteSettings, caller: Caller) -> None:
    if not set(route.scopes) <= caller.scopes:
        raise _forbidden("scope", route.scopes)
    if route.any_scopes and not set(route.any_scopes) & caller.scopes:
        raise _forbidden("scope", route.any_scopes)
    if route.clients and caller.client_id not in route.clients:
        raise _forbidden("client")
    if route.roles:
        roles = caller.claims.get(route.roles_claim)
        values = roles if isinstance(roles, list) else [roles]
        held = {role for role in values if isinstance(role, str)}
        if not set(route.roles) <= held:
            raise _forbidden("role")
    for name, allowed in route.claims.items():
        if not _claim_matches(caller.claims.get(name), allowed):
            raise _forbidden("claim")


def _claim_matches(value: object, allowed: tuple[object, ...]) -> bool:
    # bool is an int in Python: compare types too, so true never equals 1.
    values = value if isinstance(value, list) else [value]
    return any(type(v) is type(a) and v == a for v in values for a in allowed)
