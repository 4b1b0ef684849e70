"""Function-level authorization (no I/O): RFC 6750 §3.1, RFC 9470."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.accounts.levels import ACR_MFA, ACR_PASSWORD
from bastion.errors import Forbidden, StepUpRequired
from bastion.gateway.caller import Caller
from bastion.gateway.policy import authorize
from bastion.gateway.settings import RouteSettings

NOW = 1_700_000_000.0


def _route(**options: Any) -> RouteSettings:
    return RouteSettings(
        methods=("GET",), path="/x/{id}", upstream="u", auth=("bastion",), **options
    )


def _caller(scopes: tuple[str, ...] = (), client: str | None = "app", **claims: Any) -> Caller:
    return Caller(
        issuer="bastion",
        subject=str(claims.get("sub", "alice")),
        client_id=client,
        scopes=frozenset(scopes),
        claims={"sub": "alice", **claims},
        expires_at=NOW + 60,
        jti="j",
    )


def test_all_of_and_any_of_scopes() -> None:
    route = _route(scopes=("a", "b"), any_scopes=("c", "d"))
    authorize(route, _caller(("a", "b", "d")), NOW)
    for held in (("a", "c"), ("a", "b"), ()):
        with pytest.raises(Forbidden) as caught:
            authorize(route, _caller(held), NOW)
        assert 'error="insufficient_scope"' in caught.value.headers["www-authenticate"]


def test_clients_roles_and_claims() -> None:
    route = _route(clients=("app",), roles=("support",), claims={"tier": ("gold", "silver")})
    authorize(route, _caller(roles=["support", "x"], tier="gold"), NOW)
    refused = [
        _caller(client="other", roles=["support"], tier="gold"),
        _caller(client=None, roles=["support"], tier="gold"),
        _caller(roles=["x"], tier="gold"),
        _caller(roles="support-lead", tier="gold"),
        _caller(roles=["support"], tier="bronze"),
        _caller(roles=["support"]),
    ]
    for caller in refused:
        with pytest.raises(Forbidden):
            authorize(route, caller, NOW)


def test_claim_types_are_compared_strictly() -> None:
    route = _route(claims={"verified": (True,)})
    authorize(route, _caller(verified=True), NOW)
    for value in (1, "true", [1]):
        with pytest.raises(Forbidden):
            authorize(route, _caller(verified=value), NOW)


def test_step_up_requirement() -> None:
    """RFC 9470 §3: acr and max_age in the challenge."""
    route = _route(acr=ACR_MFA, max_auth_age=60)
    authorize(route, _caller(acr=ACR_MFA, auth_time=NOW - 30), NOW)
    for claims in (
        {"acr": ACR_PASSWORD, "auth_time": NOW},
        {"acr": ACR_MFA},
        {
            "acr": ACR_MFA,
            "auth_time": NOW - 61,
        },
    ):
        with pytest.raises(StepUpRequired) as caught:
            authorize(route, _caller(**claims), NOW)
        assert caught.value.status == 401
        assert "insufficient_user_authentication" in caught.value.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"auth": None}, "auth is required"),
        ({"auth": ("public", "bastion")}, "cannot be combined"),
        ({"auth": ("public",), "scopes": ("a",)}, "public route"),
        ({"auth": ("public",), "objects": {"owned": "note"}}, "authenticated caller"),
        ({"upstream_path": "/y/{other}"}, "not in path"),
        ({"acr": "urn:example:gold"}, "acr must be one of"),
        ({"objects": {"owned": "note", "id_param": "nope"}}, "id_param"),
        ({"objects": {"records": "note"}}, "create route"),
        ({"forward_headers": ("Authorization",)}, "never forwarded"),
        ({"cors": {"origins": ["*"]}}, "not an origin"),
    ],
)
def test_route_settings_refuse_unsafe_or_inconsistent_routes(
    options: dict[str, Any], message: str
) -> None:
    base: dict[str, Any] = {
        "methods": ("GET",),
        "path": "/x/{id}",
        "upstream": "u",
        "auth": ("bastion",),
    }
    with pytest.raises(ValueError, match=message):
        RouteSettings(**{**base, **options})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"methods": ("GET", "HEAD"), "objects": {"response_owner": "/owner"}}, "HEAD"),
        ({"auth": ("bastion", "partner"), "objects": {"owned": "note"}}, "single issuer"),
        ({"auth": ("partner",), "acr": ACR_MFA}, 'auth = "bastion" alone'),
        ({"forward_headers": ("X-Forwarded-For",)}, "the gateway owns them"),
        ({"forward_headers": ("content-length",)}, "the gateway owns them"),
        # RFC 9449: the app's proof is its credential at the gateway, never an upstream's.
        ({"forward_headers": ("DPoP",)}, "the gateway owns them"),
    ],
)
def test_routes_that_would_leak_or_confuse_are_refused(
    options: dict[str, Any], message: str
) -> None:
    base: dict[str, Any] = {
        "methods": ("GET",),
        "path": "/x/{id}",
        "upstream": "u",
        "auth": ("bastion",),
    }
    with pytest.raises(ValueError, match=message):
        RouteSettings(**{**base, **options})


def test_a_verified_token_is_checked_once_per_route_but_its_sign_in_age_always() -> None:
    """What depends on the token and the route alone is remembered per verified token
    and route; the sign-in age depends on the time and is checked on every request."""
    route = _route(scopes=("a",), acr=ACR_MFA, max_auth_age=60)
    caller = _caller(("a",), acr=ACR_MFA, auth_time=NOW - 30)
    authorize(route, caller, NOW)
    authorize(route, caller, NOW)
    with pytest.raises(StepUpRequired):
        authorize(route, caller, NOW + 31)  # the same token, its sign-in now too old
    # Another route (another settings object) is checked on its own.
    with pytest.raises(Forbidden):
        authorize(_route(scopes=("b",)), caller, NOW)
    # A refusal is never remembered.
    other = _route(scopes=("b",))
    held_none = _caller(())
    for _ in range(2):
        with pytest.raises(Forbidden):
            authorize(other, held_none, NOW)
