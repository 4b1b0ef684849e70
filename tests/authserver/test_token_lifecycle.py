"""Refresh rotation, reuse detection, revocation, introspection, PAR, userinfo."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from bastion.authserver.access import DENYLIST_PREFIX
from bastion.authserver.stores import IssuedToken
from bastion.clock import FixedClock
from bastion.oauth.clients import Client
from tests.authserver.conftest import (
    API,
    APP_REDIRECT,
    BACKEND_SECRET,
    GATEWAY_SECRET,
    ISSUER,
    Server,
    authorize_params,
    exchange,
    get_code,
    query_of,
    redeem,
    start_server,
    tokens,
)

BACKEND = ("backend", BACKEND_SECRET)
GATEWAY = ("gateway", GATEWAY_SECRET)


def refresh(
    server: Server, token: object, headers: dict[str, str] | None = None, **extra: str
) -> Any:
    return server.client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": "mobile",
            **extra,
        },
        headers=headers,
    )


@pytest.fixture
def graced(tmp_path: Path, database_url: str, master_key_b64: str) -> Iterator[Server]:
    """A server whose operator accepted a grace window for lost refresh answers."""
    with start_server(
        tmp_path, database_url, master_key_b64, oauth='refresh_grace = "5s"'
    ) as started:
        yield started


def introspect(server: Server, token: object, auth: tuple[str, str] = BACKEND) -> Any:
    return server.client.post("/introspect", data={"token": token}, auth=auth).json()


def test_refresh_rotates_every_time(server: Server) -> None:
    first = tokens(server)
    second = refresh(server, first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    third = refresh(server, second["refresh_token"]).json()
    assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])
    assert introspect(server, third["access_token"])["active"] is True


def test_reuse_of_a_rotated_token_revokes_the_family(server: Server) -> None:
    """RFC 9700 §4.14.2: replaying a rotated-out token revokes every token of the family."""
    first = tokens(server)
    second = refresh(server, first["refresh_token"]).json()
    third = refresh(server, second["refresh_token"]).json()
    replay = refresh(server, first["refresh_token"])  # generation 0, two rotations ago
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert refresh(server, third["refresh_token"]).json()["error"] == "invalid_grant"
    for body in (first, second, third):
        assert introspect(server, body["access_token"])["active"] is False


def test_replaying_the_previous_token_revokes_the_family_at_once(server: Server) -> None:
    """RFC 9700 §4.14.2: without a grace window (the default), the token just rotated out
    is as dead as any older one. A thief racing the app loses the whole family, the
    successor included, and the reuse is audited."""
    first = tokens(server)
    second = refresh(server, first["refresh_token"]).json()
    replay = refresh(server, first["refresh_token"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert refresh(server, second["refresh_token"]).json()["error"] == "invalid_grant"
    assert introspect(server, second["access_token"])["active"] is False
    [event] = server.events("oauth.refresh.reuse_detected")
    assert event["outcome"] == "denied"
    assert event["details"]["generation"] == 0


def test_a_lost_response_gets_the_same_successor_within_grace(graced: Server) -> None:
    """The client retried after losing the answer: same successor, never a fork."""
    first = tokens(graced)
    answer = refresh(graced, first["refresh_token"]).json()
    retry = refresh(graced, first["refresh_token"]).json()
    assert retry["refresh_token"] == answer["refresh_token"]
    assert refresh(graced, answer["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    "elsewhere", [{"x-test-peer": "203.0.113.7"}, {"user-agent": "another-client/1.0"}]
)
def test_a_replay_from_another_instance_is_reuse_even_within_grace(
    graced: Server, elsewhere: dict[str, str]
) -> None:
    """RFC 9700 §4.14.2: the grace window forgives only the instance that made the
    rotation; the same token from another address or client software is a thief's."""
    first = tokens(graced)
    second = refresh(graced, first["refresh_token"]).json()
    replay = refresh(graced, first["refresh_token"], headers=elsewhere)
    assert replay.json()["error"] == "invalid_grant"
    assert refresh(graced, second["refresh_token"]).json()["error"] == "invalid_grant"
    assert graced.events("oauth.refresh.reuse_detected")


def concurrent_refreshes(server: Server, token: object) -> set[str]:
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: refresh(server, token).json(), range(6)))
    return {a["refresh_token"] for a in answers if "refresh_token" in a}


def test_concurrent_refreshes_do_not_fork(graced: Server) -> None:
    first = tokens(graced)
    assert len(concurrent_refreshes(graced, first["refresh_token"])) == 1


def test_concurrent_refreshes_without_grace_are_reuse(server: Server) -> None:
    """RFC 9700 §4.14.2: one request wins the rotation, every other one is a second use of
    the same token, and reuse revokes the family, the winner's successor included: at most
    one answer, and nothing it carried stays usable."""
    first = tokens(server)
    won = concurrent_refreshes(server, first["refresh_token"])
    assert len(won) <= 1
    assert server.events("oauth.refresh.reuse_detected")
    for token in won:
        assert refresh(server, token).json()["error"] == "invalid_grant"


def test_refresh_scope_can_only_narrow(server: Server) -> None:
    """RFC 6749 §6; a refused refresh does not use up the token (no reuse on the retry)."""
    first = tokens(server)
    wider = refresh(server, first["refresh_token"], scope="openid orders:write")
    assert wider.json()["error"] == "invalid_scope"
    narrower = refresh(server, first["refresh_token"], scope="orders:read").json()
    assert narrower["scope"] == "orders:read"


def test_refresh_cannot_widen_the_audience(server: Server) -> None:
    """RFC 8707 §2.2: the grant's audience (here the default one) is the ceiling for every
    token refreshed from it, even for a resource the client may otherwise use."""
    first = tokens(server)
    widened = refresh(server, first["refresh_token"], resource=API)
    assert widened.status_code == 400
    assert widened.json()["error"] == "invalid_target"
    assert refresh(server, first["refresh_token"]).status_code == 200


def test_refresh_tokens_are_bound_to_their_client(server: Server) -> None:
    first = tokens(server)
    stolen = server.client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=BACKEND,
    )
    assert stolen.json()["error"] in ("invalid_grant", "unauthorized_client")


def test_forged_refresh_tokens(server: Server) -> None:
    first = tokens(server)
    token = str(first["refresh_token"])
    prefix, family, generation, mac = token.split(".")
    for forged in (
        f"{prefix}.{family}.{int(generation) + 1}.{mac}",
        f"{prefix}.{family}.{generation}.{'A' * 43}",
        "rt1.x.0.y",
        "",
    ):
        assert refresh(server, forged).json()["error"] in ("invalid_grant", "invalid_request")


def test_revoking_a_refresh_token_revokes_its_family(server: Server) -> None:
    """RFC 7009 §2.1."""
    first = tokens(server)
    response = server.client.post(
        "/revoke", data={"token": first["refresh_token"], "client_id": "mobile"}
    )
    assert response.status_code == 200
    assert refresh(server, first["refresh_token"]).json()["error"] == "invalid_grant"
    assert introspect(server, first["access_token"])["active"] is False


def test_revoking_an_access_token_denylists_it(server: Server) -> None:
    first = tokens(server)
    server.client.post(
        "/revoke",
        data={
            "token": first["access_token"],
            "client_id": "mobile",
            "token_type_hint": "access_token",
        },
    )
    assert introspect(server, first["access_token"])["active"] is False
    assert refresh(server, first["refresh_token"]).status_code == 200


def test_cross_client_revocation_is_refused(server: Server) -> None:
    first = tokens(server)
    response = server.client.post("/revoke", data={"token": first["refresh_token"]}, auth=BACKEND)
    assert response.status_code == 400
    assert refresh(server, first["refresh_token"]).status_code == 200


def test_unknown_tokens_revoke_quietly(server: Server) -> None:
    """RFC 7009 §2.2: invalid tokens do not cause an error response."""
    response = server.client.post("/revoke", data={"token": "nonsense", "client_id": "mobile"})
    assert response.status_code == 200


def test_introspection_is_for_authenticated_resource_servers(server: Server) -> None:
    """RFC 7662 §4: public clients may not introspect."""
    first = tokens(server)
    public = server.client.post(
        "/introspect", data={"token": first["access_token"], "client_id": "mobile"}
    )
    assert public.status_code == 401
    wrong = server.client.post(
        "/introspect", data={"token": first["access_token"]}, auth=("backend", "wrong")
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    active = introspect(server, first["access_token"])
    assert active["active"] is True
    assert active["client_id"] == "mobile"
    assert introspect(server, "garbage") == {"active": False}


def test_client_credentials(server: Server) -> None:
    response = server.client.post(
        "/token", data={"grant_type": "client_credentials", "scope": "reports"}, auth=BACKEND
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "reports"
    wider = server.client.post(
        "/token", data={"grant_type": "client_credentials", "scope": "admin"}, auth=BACKEND
    )
    assert wider.json()["error"] == "invalid_scope"
    public = server.client.post(
        "/token", data={"grant_type": "client_credentials", "client_id": "mobile"}
    )
    assert public.json()["error"] == "unauthorized_client"


def test_no_password_or_implicit_grant(server: Server) -> None:
    for grant in ("password", "implicit"):
        response = server.client.post(
            "/token", data={"grant_type": grant, "username": "alice", "password": "x"}, auth=BACKEND
        )
        assert response.json()["error"] == "unsupported_grant_type"


def test_pushed_authorization_requests(server: Server) -> None:
    """RFC 9126: one-time request_uri, bound to its client; required where configured."""
    pushed = server.client.post("/par", data=authorize_params())
    assert pushed.status_code == 201
    request_uri = pushed.json()["request_uri"]
    assert request_uri.startswith("urn:ietf:params:oauth:request_uri:")
    assert pushed.json()["expires_in"] == 60
    code = get_code(
        server.client,
        request_uri=request_uri,
        client_id="mobile",
        redirect_uri=None,
        response_type=None,
        scope=None,
        state=None,
        nonce=None,
        code_challenge=None,
        code_challenge_method=None,
    )
    assert redeem(server.client, code)["_status"] == 200
    again = server.client.get(
        "/authorize", params={"client_id": "mobile", "request_uri": request_uri}
    )
    assert again.status_code == 400, "a request_uri is used once"
    other = server.client.post("/par", data=authorize_params()).json()["request_uri"]
    stolen = server.client.get("/authorize", params={"client_id": "strict", "request_uri": other})
    assert stolen.status_code == 400, "bound to the client that pushed it"
    strict = server.client.get(
        "/authorize",
        params=authorize_params(
            client_id="strict", redirect_uri="com.example.strict:/cb", scope="openid"
        ),
    )
    assert query_of(strict.headers["location"])["error"] == "invalid_request"


def test_userinfo(server: Server) -> None:
    first = tokens(server)
    response = server.client.get(
        "/userinfo", headers={"authorization": f"Bearer {first['access_token']}"}
    )
    assert response.json() == {"sub": server.user_id, "preferred_username": "alice"}
    in_url = server.client.get(f"/userinfo?access_token={first['access_token']}")
    assert in_url.status_code == 400, "RFC 9700 §4.3.2: no tokens in URLs"
    as_id_token = server.client.get(
        "/userinfo", headers={"authorization": f"Bearer {first['id_token']}"}
    )
    assert as_id_token.status_code == 401
    assert "invalid_token" in as_id_token.headers["www-authenticate"]


def test_malformed_token_requests(server: Server) -> None:
    as_json = server.client.post("/token", json={"grant_type": "client_credentials"}, auth=BACKEND)
    assert as_json.status_code == 400
    assert as_json.json()["error"] == "invalid_request"
    in_query = server.client.post("/token?grant_type=client_credentials", data={}, auth=BACKEND)
    assert in_query.json()["error"] == "invalid_request"
    assert server.client.get("/token").status_code == 405
    assert server.client.get("/.well-known/openid-configuration").json()["issuer"] == ISSUER


def test_introspection_needs_the_operators_permission(server: Server) -> None:
    """RFC 7662 §4: being confidential is not enough; the gateway was not designated."""
    first = tokens(server)
    denied = server.client.post("/introspect", data={"token": first["access_token"]}, auth=GATEWAY)
    assert denied.status_code == 401


def test_introspection_is_limited_to_the_servers_audiences(server: Server) -> None:
    first = tokens(server, resource=API)
    exchanged = exchange(server, first["access_token"]).json()
    assert "access_token" in exchanged, exchanged
    assert introspect(server, exchanged["access_token"]) == {"active": False}


def test_userinfo_is_for_user_tokens_only(server: Server) -> None:
    machine = server.client.post(
        "/token", data={"grant_type": "client_credentials", "scope": "reports"}, auth=BACKEND
    ).json()
    response = server.client.get(
        "/userinfo", headers={"authorization": f"Bearer {machine['access_token']}"}
    )
    assert response.status_code == 401


def test_a_burned_request_uri_attempt_does_not_consume_it(server: Server) -> None:
    request_uri = server.client.post("/par", data=authorize_params()).json()["request_uri"]
    other = server.client.get(
        "/authorize", params={"client_id": "strict", "request_uri": request_uri}
    )
    assert other.status_code == 400
    legit = server.client.get(
        "/authorize", params={"client_id": "mobile", "request_uri": request_uri}
    )
    assert legit.status_code == 303, "the legitimate client can still use it"


def test_redirect_uri_is_optional_at_the_token_endpoint_when_it_was_omitted(
    server: Server,
) -> None:
    """RFC 6749 §4.1.3: required only if the authorization request included it."""
    from tests.authserver.conftest import VERIFIER, approve, sign_in

    pushed = server.client.post(
        "/par", data=authorize_params(client_id="strict", redirect_uri=None, scope="openid")
    ).json()
    response = server.client.get(
        "/authorize", params={"client_id": "strict", "request_uri": pushed["request_uri"]}
    )
    location = response.headers["location"]
    if location.startswith("/login?"):
        location = sign_in(server.client, location)
    location = approve(server.client, location)
    code = query_of(location)["code"]
    body = server.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": "strict",
            "code_verifier": VERIFIER,
        },
    ).json()
    assert "access_token" in body, body


@pytest.mark.parametrize("revoked_at", [-1.0, 5.0])
def test_revoked_tokens_stay_refused_through_the_clock_skew(
    tmp_path: Path, database_url: str, master_key_b64: str, revoked_at: float
) -> None:
    """An access token verifies up to 30 s past its exp (clock skew): a revocation just
    before or after exp must cover that window too (RFC 7009 §2.2), or the revoked token
    verifies again once its denylist entry is gone."""
    clock = FixedClock(float(int(time.time())))
    with start_server(tmp_path, database_url, master_key_b64, clock=clock) as server:
        first = tokens(server)
        payload = str(first["access_token"]).split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        clock.set(claims["exp"] + revoked_at)
        server.client.post("/revoke", data={"token": first["refresh_token"], "client_id": "mobile"})
        clock.set(claims["exp"] + 20)  # still within the skew verification forgives
        assert introspect(server, first["access_token"])["active"] is False


@pytest.mark.parametrize("revocation", ["before", "after"])
def test_a_token_minted_while_its_family_is_revoked_is_never_live(
    server: Server, revocation: str
) -> None:
    """RFC 9700 §4.14.2: a revocation that lands between a refresh's checks and its answer
    (a thief's refresh racing the app's reuse, or /revoke) must not leave the access
    token that refresh minted live while the audit says the family is revoked. The token
    is indexed in the transaction that rotates the family, on condition that it is not
    revoked: a revocation before it means nothing is issued, one after it finds the
    token and denylists it."""
    first = tokens(server)
    access = server.runtime.auth.access
    store = access.grants
    rotate = store.rotate_family
    minted: list[str] = []

    async def revoke_around_rotation(
        family_id: str,
        generation: int,
        now: float,
        rotated_by: str,
        token: IssuedToken,
        dpop_jkt: str | None = None,
    ) -> bool:
        if revocation == "before":
            await access.revoke_families("test", "operator", family_id=family_id)
        rotated = await rotate(family_id, generation, now, rotated_by, token, dpop_jkt)
        if rotated:
            minted.append(token.jti)
        if revocation == "after":
            await access.revoke_families("test", "operator", family_id=family_id)
        return rotated

    store.rotate_family = revoke_around_rotation  # type: ignore[method-assign]
    try:
        answer = refresh(server, first["refresh_token"])
    finally:
        store.rotate_family = rotate  # type: ignore[method-assign]
    if revocation == "before":
        assert answer.json()["error"] == "invalid_grant"
        assert not minted
        return
    assert minted
    for jti in minted:
        assert server.call(server.runtime.hot.get, DENYLIST_PREFIX + jti) is not None
    assert introspect(server, answer.json()["access_token"])["active"] is False


def test_refresh_follows_a_narrowed_client(server: Server) -> None:
    """Narrowing a client (`bastion clients update`) bounds the tokens its existing
    refresh families yield, not only new grants: no scope or audience it no longer has."""
    store = server.runtime.auth.clients.store
    app = Client(
        client_id="narrowed",
        client_type="public",
        auth_method="none",
        redirect_uris=(APP_REDIRECT,),
        scopes=frozenset({"openid", "profile", "orders:read"}),
        resources=frozenset({API}),
    )
    server.call(store.create, app, 0.0)
    code = get_code(server.client, client_id="narrowed", resource=API)
    first = redeem(server.client, code, client_id="narrowed", resource=API)
    assert first["_status"] == 200, first
    server.call(store.update, replace(app, scopes=frozenset({"openid"})), 1.0)
    narrower = refresh(server, first["refresh_token"], client_id="narrowed").json()
    assert narrower["scope"] == "openid"
    server.call(store.update, replace(app, resources=frozenset()), 2.0)
    refused = refresh(server, narrower["refresh_token"], client_id="narrowed").json()
    assert refused["error"] == "invalid_grant"
