"""Authorization code + PKCE through the real app: the happy path and its attacks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from bastion.clock import FixedClock
from tests.authserver.conftest import (
    API,
    APP_REDIRECT,
    CLAIMED_REDIRECT,
    ISSUER,
    VERIFIER,
    Server,
    authorize_params,
    get_code,
    query_of,
    redeem,
    sign_in,
    start_server,
)


def test_discovery_advertises_exactly_what_is_supported(server: Server) -> None:
    """RFC 8414 §2; OpenID Connect Discovery §3."""
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        document = server.client.get(path).json()
        assert document["issuer"] == ISSUER
        assert document["code_challenge_methods_supported"] == ["S256"]
        assert document["response_types_supported"] == ["code"]
        assert document["authorization_response_iss_parameter_supported"] is True
        assert document["pushed_authorization_request_endpoint"] == f"{ISSUER}/par"
        assert "password" not in document["grant_types_supported"]
        assert "implicit" not in document["grant_types_supported"]
        for name in (
            "revocation_endpoint",
            "introspection_endpoint",
            "jwks_uri",
            "token_endpoint",
            "authorization_endpoint",
            "userinfo_endpoint",
        ):
            assert document[name].startswith(ISSUER)


def test_full_flow_issues_verifiable_tokens(server: Server) -> None:
    code = get_code(server.client)
    body = redeem(server.client, code)
    assert body["_status"] == 200, body
    assert body["token_type"] == "Bearer"
    keys = KeySet.import_key_set(server.client.get("/jwks.json").json())
    access = jwt.decode(str(body["access_token"]), keys, algorithms=["ES256"])
    assert access.header["typ"] == "at+jwt"
    claims = access.claims
    assert claims["iss"] == ISSUER
    assert claims["sub"] == server.user_id
    assert claims["client_id"] == "mobile"
    assert claims["scope"] == "openid profile orders:read"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["amr"] == ["pwd"]
    id_token = jwt.decode(str(body["id_token"]), keys, algorithms=["ES256"]).claims
    assert id_token["nonce"] == "nonce-1"
    assert id_token["aud"] == "mobile"
    assert str(body["refresh_token"]).startswith("rt1.")


def audience_of(server: Server, token: object) -> object:
    keys = KeySet.import_key_set(server.client.get("/jwks.json").json())
    return jwt.decode(str(token), keys, algorithms=["ES256"]).claims["aud"]


def test_redemption_cannot_name_a_resource_the_user_never_saw(server: Server) -> None:
    """RFC 8707 §2.2: a resource at the token endpoint must be one the grant covers.

    The user approved a request that named no resource, so the grant's audience is the
    default one; the client's other resources were never part of it.
    """
    widened = redeem(server.client, get_code(server.client), resource=API)
    assert widened["_status"] == 400, widened
    assert widened["error"] == "invalid_target"
    granted = redeem(server.client, get_code(server.client, resource=API), resource=API)
    assert granted["_status"] == 200, granted
    assert audience_of(server, granted["access_token"]) == API
    plain = redeem(server.client, get_code(server.client))
    assert audience_of(server, plain["access_token"]) == ISSUER


def test_token_responses_are_not_cached(server: Server) -> None:
    response = server.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": get_code(server.client),
            "redirect_uri": APP_REDIRECT,
            "client_id": "mobile",
            "code_verifier": VERIFIER,
        },
    )
    assert response.headers["cache-control"] == "no-store"


def test_second_authorization_reuses_the_session_and_consent(server: Server) -> None:
    """With a claimed https redirect the app's identity is assured: straight back."""
    get_code(server.client, redirect_uri=CLAIMED_REDIRECT)
    response = server.client.get(
        "/authorize", params=authorize_params(state="again", redirect_uri=CLAIMED_REDIRECT)
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(CLAIMED_REDIRECT), "signed in and consented: straight back"
    assert query_of(location)["state"] == "again"


def test_private_use_schemes_always_ask(server: Server) -> None:
    """RFC 8252 §8.6: any app can claim a custom scheme, so a remembered consent is not
    applied silently to one; prompt=none gets consent_required."""
    get_code(server.client)
    again = server.client.get("/authorize", params=authorize_params(state="again"))
    assert again.headers["location"].startswith("/consent?")
    silent = server.client.get("/authorize", params=authorize_params(prompt="none"))
    assert query_of(silent.headers["location"])["error"] == "consent_required"


def test_code_replay_fails_and_revokes_what_it_issued(server: Server) -> None:
    """RFC 6749 §4.1.2 / RFC 9700 §4.5: a second redemption revokes the first's tokens."""
    code = get_code(server.client)
    first = redeem(server.client, code)
    second = redeem(server.client, code)
    assert second["_status"] == 400
    assert second["error"] == "invalid_grant"
    refreshed = server.client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": "mobile",
        },
    )
    assert refreshed.json()["error"] == "invalid_grant"
    userinfo = server.client.get(
        "/userinfo", headers={"authorization": f"Bearer {first['access_token']}"}
    )
    assert userinfo.status_code == 401


def test_pkce_and_binding_attacks(server: Server) -> None:
    """RFC 7636 §4.6, RFC 6749 §4.1.3: each binding failure is invalid_grant."""
    for overrides in ({"code_verifier": "w" * 60}, {"redirect_uri": "http://127.0.0.1/callback"}):
        code = get_code(server.client)
        body = redeem(server.client, code, **overrides)
        assert body["error"] == "invalid_grant", overrides
    code = get_code(server.client)
    stripped = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": APP_REDIRECT,
        "client_id": "mobile",
    }
    assert server.client.post("/token", data=stripped).json()["error"] == "invalid_grant"


def test_code_injection_into_another_client(server: Server) -> None:
    code = get_code(server.client)
    response = server.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": APP_REDIRECT,
            "code_verifier": VERIFIER,
        },
        auth=("backend", "backend-secret-0123456789abcdefghijklmnopqrstuv"),
    )
    assert response.json()["error"] in ("invalid_grant", "unauthorized_client")


def test_unknown_client_and_bad_redirect_are_shown_never_redirected(server: Server) -> None:
    """RFC 9700 §4.11.2: an unverified redirect URI never receives the user."""
    for overrides in (
        {"client_id": "nobody"},
        {"redirect_uri": "https://evil.example/cb"},
        {"redirect_uri": APP_REDIRECT + "/x"},
    ):
        response = server.client.get("/authorize", params=authorize_params(**overrides))
        assert response.status_code == 400
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["x-frame-options"] == "DENY"
        assert "evil" not in response.text


def test_other_errors_go_back_with_state_and_iss(server: Server) -> None:
    response = server.client.get(
        "/authorize", params=authorize_params(code_challenge_method="plain")
    )
    assert response.status_code == 303
    answer = query_of(response.headers["location"])
    assert answer["error"] == "invalid_request"
    assert answer["state"] == "st-1"
    assert answer["iss"] == ISSUER


def test_duplicate_parameters_are_refused(server: Server) -> None:
    """RFC 6749 §3.1: a parameter sent twice; nothing in such a request can be trusted,
    so the error is shown, not redirected."""
    params = [*authorize_params().items(), ("scope", "openid")]
    response = server.client.get("/authorize", params=params)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "invalid_request" in response.text


def test_prompt_none_without_a_session(server: Server) -> None:
    response = server.client.get("/authorize", params=authorize_params(prompt="none"))
    assert query_of(response.headers["location"])["error"] == "login_required"


def test_wrong_password_is_generic_and_issues_nothing(server: Server) -> None:
    response = server.client.get("/authorize", params=authorize_params())
    location = sign_in(server.client, response.headers["location"], password="wrong")
    assert location == ""
    page = server.client.post(
        "/login", data={"interaction": "x", "csrf": "y", "username": "nobody", "password": "z"}
    )
    assert page.status_code == 400


def test_login_post_without_csrf_or_cookie_is_refused(server: Server) -> None:
    response = server.client.get("/authorize", params=authorize_params())
    interaction = query_of(response.headers["location"])["interaction"]
    forged = server.client.post(
        "/login",
        data={"interaction": interaction, "csrf": "0" * 64, "username": "alice", "password": "x"},
    )
    assert forged.status_code == 400
    assert "session" not in "".join(forged.headers.get_list("set-cookie"))
    server.client.cookies.clear()
    page = server.client.get(f"/login?interaction={interaction}")
    assert page.status_code == 400, "an interaction belongs to the browser that started it"


def test_consent_denied(server: Server) -> None:
    from tests.authserver.conftest import approve

    response = server.client.get("/authorize", params=authorize_params())
    location = sign_in(server.client, response.headers["location"])
    answer = query_of(approve(server.client, location, decision="deny"))
    assert answer["error"] == "access_denied"
    assert "code" not in answer


def test_pages_are_frame_denied(server: Server) -> None:
    response = server.client.get("/authorize", params=authorize_params())
    page = server.client.get(response.headers["location"])
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert '<label for="username">Username</label>' in page.text
    assert '<label for="password">Password</label>' in page.text


def test_prompt_login_forces_a_new_sign_in(server: Server) -> None:
    """OpenID Connect Core §3.1.2.1: prompt=login re-authenticates even with a session,
    and the consent page cannot be used to skip the sign-in."""
    get_code(server.client)
    response = server.client.get("/authorize", params=authorize_params(prompt="login"))
    location = response.headers["location"]
    assert location.startswith("/login?")
    detour = server.client.get(location.replace("/login?", "/consent?"))
    assert detour.status_code == 303
    assert detour.headers["location"].startswith("/login?")


def test_max_age_forces_a_new_sign_in_once_exceeded(server: Server) -> None:
    get_code(server.client, redirect_uri=CLAIMED_REDIRECT)
    fresh = server.client.get(
        "/authorize", params=authorize_params(max_age="3600", redirect_uri=CLAIMED_REDIRECT)
    )
    assert fresh.headers["location"].startswith(CLAIMED_REDIRECT)
    stale = server.client.get(
        "/authorize", params=authorize_params(max_age="0", redirect_uri=CLAIMED_REDIRECT)
    )
    assert stale.headers["location"].startswith("/login?")


def test_every_refusal_is_audited(server: Server) -> None:
    server.client.post(
        "/token", data={"grant_type": "authorization_code", "code": "nope", "client_id": "mobile"}
    )
    server.client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=("backend", "wrong")
    )
    log = (server.settings.audit_path).read_text()
    assert '"action":"oauth.code.refused"' in log
    assert '"action":"oauth.client_auth.failed"' in log
    assert '"action":"oauth.token.refused"' in log
    assert "wrong" not in log.replace('"reason":"wrong client secret"', "")


@pytest.mark.parametrize(("configured", "lifetime"), [("", 60), ('code_lifetime = "10m"', 600)])
def test_a_code_past_its_lifetime_is_refused(
    tmp_path: Path, database_url: str, master_key_b64: str, configured: str, lifetime: int
) -> None:
    """RFC 6749 §4.1.2: a code is short-lived; ``oauth.code_lifetime`` sets how long (60 s
    by default). One redeemed a second before the end works; one at the end is refused
    and issues nothing."""
    clock = FixedClock(float(int(time.time())))
    with start_server(
        tmp_path, database_url, master_key_b64, oauth=configured, clock=clock
    ) as server:
        fresh = get_code(server.client)
        clock.advance(lifetime - 1)
        assert redeem(server.client, fresh)["_status"] == 200
        stale = get_code(server.client)
        clock.advance(lifetime)
        refused = redeem(server.client, stale)
        assert refused["_status"] == 400, refused
        assert refused["error"] == "invalid_grant"
        assert "access_token" not in refused


@pytest.mark.parametrize("change", ["disabled", "tokens_invalidated"])
def test_a_code_of_a_user_revoked_since_issues_nothing(server: Server, change: str) -> None:
    """RFC 9700 §4.14.2 (revocation as a whole), RFC 6749 §4.1.2: a user disabled or whose
    tokens were revoked after the code was issued gets no tokens from it; whatever the
    redemption indexed is revoked, and the code is used up."""
    code = get_code(server.client)
    users = server.runtime.auth.users
    if change == "disabled":
        server.call(users.set_enabled, server.user_id, False)
    else:
        server.call(users.invalidate_tokens, server.user_id, time.time() + 1)
    refused = redeem(server.client, code)
    assert refused["_status"] == 400, refused
    assert refused["error"] == "invalid_grant"
    assert "access_token" not in refused
    revoked = server.events("oauth.family.revoked")
    assert [e["policy"] for e in revoked] == ["user_revoked"]
    again = redeem(server.client, code)
    assert again["error"] == "invalid_grant"
