"""DPoP at the authorization server (RFC 9449 §5, §6, §7, §8, §10), through the app."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.authserver.conftest import (
    ADMIN_SECRET,
    API,
    APP_REDIRECT,
    BACKEND_SECRET,
    GATEWAY_SECRET,
    ISSUER,
    VERIFIER,
    Server,
    authorize_params,
    exchange,
    get_code,
    start_server,
)
from tests.support.dpop import DeviceKey

TOKEN = f"{ISSUER}/token"
USERINFO = f"{ISSUER}/userinfo"


@pytest.fixture
def server(tmp_path: Path, database_url: str, master_key_b64: str) -> Iterator[Server]:
    with start_server(tmp_path, database_url, master_key_b64) as started:
        yield started


@pytest.fixture
def nonce_server(tmp_path: Path, database_url: str, master_key_b64: str) -> Iterator[Server]:
    with start_server(
        tmp_path, database_url, master_key_b64, oauth="dpop = { require_nonce = true }"
    ) as started:
        yield started


def claims_of(token: object) -> dict[str, Any]:
    payload = str(token).split(".")[1]
    decoded: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return decoded


def post_token(server: Server, data: dict[str, str], proof: str | None = None, **kw: Any) -> Any:
    headers = {"DPoP": proof} if proof is not None else {}
    return server.client.post("/token", data=data, headers=headers, **kw)


def code_request(
    code: str, client_id: str = "mobile", redirect: str = APP_REDIRECT
) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect,
        "client_id": client_id,
        "code_verifier": VERIFIER,
    }


def refresh_request(token: object, client_id: str = "mobile") -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": str(token), "client_id": client_id}


def dpop_tokens(server: Server, key: DeviceKey, **overrides: str | None) -> dict[str, Any]:
    code = get_code(server.client, **overrides)
    response = post_token(server, code_request(code), key.proof("POST", TOKEN))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_code_exchange_with_a_proof_binds_the_access_token(server: Server) -> None:
    # RFC 9449 §5 and §6.1: token_type DPoP, cnf.jkt the proof key's thumbprint.
    key = DeviceKey()
    body = dpop_tokens(server, key)
    assert body["token_type"] == "DPoP"
    assert claims_of(body["access_token"])["cnf"] == {"jkt": key.jkt}


def test_without_a_proof_the_token_stays_a_bearer_token(server: Server) -> None:
    code = get_code(server.client)
    body = post_token(server, code_request(code)).json()
    assert body["token_type"] == "Bearer"
    assert "cnf" not in claims_of(body["access_token"])


def test_refresh_keeps_the_key_and_refuses_any_other(server: Server) -> None:
    # RFC 9449 §5: a public client's refresh token is bound to the key for its whole family.
    key, thief = DeviceKey(), DeviceKey()
    body = dpop_tokens(server, key)
    stolen = body["refresh_token"]
    refused = post_token(server, refresh_request(stolen), thief.proof("POST", TOKEN))
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    bare = post_token(server, refresh_request(stolen))
    assert bare.status_code == 400
    reasons = [e["details"]["reason"] for e in server.events("oauth.refresh.refused")]
    assert "dpop_wrong_key" in reasons
    assert "dpop_proof_missing" in reasons
    # The thief's attempts neither used up the token nor revoked the family.
    rotated = post_token(server, refresh_request(stolen), key.proof("POST", TOKEN))
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["token_type"] == "DPoP"
    assert claims_of(rotated.json()["access_token"])["cnf"] == {"jkt": key.jkt}
    assert not server.events("oauth.refresh.reuse_detected")


def test_a_replayed_proof_is_refused(server: Server) -> None:
    # RFC 9449 §11.1: each proof once.
    key = DeviceKey()
    proof = key.proof("POST", TOKEN)
    first = post_token(server, code_request(get_code(server.client)), proof)
    assert first.status_code == 200
    code = get_code(server.client)
    again = post_token(server, code_request(code), proof)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_dpop_proof"
    assert [e["details"]["reason"] for e in server.events("oauth.dpop.refused")] == ["replay"]
    # Refused before the grant was judged: the code is still good for a proper request.
    assert post_token(server, code_request(code), key.proof("POST", TOKEN)).status_code == 200


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("not-a-jwt", "malformed"),
        ("a.b.c", "malformed"),
    ],
)
def test_a_malformed_proof_is_refused_without_using_the_code(
    server: Server, header: str, reason: str
) -> None:
    code = get_code(server.client)
    response = post_token(server, code_request(code), header)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"
    assert server.events("oauth.dpop.refused")[-1]["details"]["reason"] == reason
    assert post_token(server, code_request(code)).status_code == 200


def test_a_proof_for_another_endpoint_or_method_is_refused(server: Server) -> None:
    key = DeviceKey()
    for proof in (key.proof("POST", f"{ISSUER}/par"), key.proof("GET", TOKEN)):
        response = post_token(server, code_request(get_code(server.client)), proof)
        assert response.json()["error"] == "invalid_dpop_proof"


def test_a_bound_client_must_send_a_proof(server: Server) -> None:
    # RFC 9449 §5.2: dpop_bound_access_tokens = true.
    overrides = {"client_id": "bound", "redirect_uri": "com.example.bound:/cb", "scope": "openid"}
    code = get_code(server.client, **overrides)
    request = code_request(code, "bound", "com.example.bound:/cb")
    refused = post_token(server, request)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_dpop_proof"
    key = DeviceKey()
    accepted = post_token(server, request, key.proof("POST", TOKEN))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["token_type"] == "DPoP"


def test_the_switch_for_every_public_client(
    tmp_path: Path, database_url: str, master_key_b64: str
) -> None:
    with start_server(
        tmp_path,
        database_url,
        master_key_b64,
        oauth="dpop = { require_for_public_clients = true }",
    ) as server:
        code = get_code(server.client)
        assert post_token(server, code_request(code)).json()["error"] == "invalid_dpop_proof"
        # Confidential clients are sender-constrained by their own credentials: not asked.
        response = post_token(
            server,
            {"grant_type": "client_credentials", "scope": "reports"},
            auth=("backend", BACKEND_SECRET),
        )
        assert response.status_code == 200


def test_the_nonce_dance(nonce_server: Server) -> None:
    # RFC 9449 §8: without the server's nonce the answer is use_dpop_nonce and the nonce.
    server = nonce_server
    key = DeviceKey()
    code = get_code(server.client)
    first = post_token(server, code_request(code), key.proof("POST", TOKEN))
    assert first.status_code == 400
    assert first.json()["error"] == "use_dpop_nonce"
    nonce = first.headers["dpop-nonce"]
    second = post_token(server, code_request(code), key.proof("POST", TOKEN, nonce=nonce))
    assert second.status_code == 200, second.text
    # §8.2: the answer carries the nonce for the next request.
    assert second.headers["dpop-nonce"]
    stale = post_token(
        server,
        refresh_request(second.json()["refresh_token"]),
        key.proof("POST", TOKEN, nonce="made-up-nonce"),
    )
    assert stale.json()["error"] == "use_dpop_nonce"
    refreshed = post_token(
        server,
        refresh_request(second.json()["refresh_token"]),
        key.proof("POST", TOKEN, nonce=stale.headers["dpop-nonce"]),
    )
    assert refreshed.status_code == 200


def test_dpop_jkt_binds_the_code(server: Server) -> None:
    # RFC 9449 §10: an intercepted code is useless without the key the request named.
    key, thief = DeviceKey(), DeviceKey()
    code = get_code(server.client, dpop_jkt=key.jkt)
    stolen = post_token(server, code_request(code), thief.proof("POST", TOKEN))
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    # One attempt per code (RFC 6749 §4.1.2): the rightful app needs a new one.
    code = get_code(server.client, dpop_jkt=key.jkt)
    assert post_token(server, code_request(code)).json()["error"] == "invalid_grant"
    code = get_code(server.client, dpop_jkt=key.jkt)
    assert post_token(server, code_request(code), key.proof("POST", TOKEN)).status_code == 200


def test_a_malformed_dpop_jkt_is_refused(server: Server) -> None:
    response = server.client.get(
        "/authorize",
        params=authorize_params(scope="openid", dpop_jkt="short"),
    )
    assert response.status_code == 303
    assert "error=invalid_request" in response.headers["location"]


def test_a_proof_with_the_pushed_request_binds_the_code(server: Server) -> None:
    # RFC 9449 §10.1: the key of the proof sent to the PAR endpoint.
    key, thief = DeviceKey(), DeviceKey()
    params = authorize_params(scope="openid", state=None, nonce=None)
    mismatch = server.client.post(
        "/par",
        data={**params, "dpop_jkt": thief.jkt},
        headers={"DPoP": key.proof("POST", f"{ISSUER}/par")},
    )
    assert mismatch.status_code == 400
    pushed = server.client.post(
        "/par", data=params, headers={"DPoP": key.proof("POST", f"{ISSUER}/par")}
    )
    assert pushed.status_code == 201, pushed.text
    code = get_code(server.client, request_uri=pushed.json()["request_uri"])
    assert post_token(server, code_request(code), thief.proof("POST", TOKEN)).status_code == 400


def test_client_credentials_and_introspection_show_the_binding(server: Server) -> None:
    # RFC 9449 §6.2: introspection returns cnf and token_type DPoP.
    key = DeviceKey()
    issued = post_token(
        server,
        {"grant_type": "client_credentials", "scope": "reports"},
        key.proof("POST", TOKEN),
        auth=("backend", BACKEND_SECRET),
    ).json()
    assert issued["token_type"] == "DPoP"
    answer = server.client.post(
        "/introspect", data={"token": issued["access_token"]}, auth=("backend", BACKEND_SECRET)
    ).json()
    assert answer["active"] is True
    assert answer["token_type"] == "DPoP"
    assert answer["cnf"] == {"jkt": key.jkt}


def test_discovery_advertises_the_proof_algorithms(server: Server) -> None:
    document = server.client.get("/.well-known/oauth-authorization-server").json()
    assert "ES256" in document["dpop_signing_alg_values_supported"]
    assert "none" not in document["dpop_signing_alg_values_supported"]
    assert not [a for a in document["dpop_signing_alg_values_supported"] if a.startswith("HS")]


def userinfo(server: Server, scheme: str, token: str, proof: str | None = None) -> Any:
    headers = {"authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return server.client.get("/userinfo", headers=headers)


def test_userinfo_with_a_bound_token(server: Server) -> None:
    # RFC 9449 §7.1: Authorization: DPoP plus a proof naming the token (ath).
    key = DeviceKey()
    token = dpop_tokens(server, key)["access_token"]
    ok = userinfo(server, "DPoP", token, key.proof("GET", USERINFO, access_token=token))
    assert ok.status_code == 200, ok.text
    assert ok.json()["sub"] == server.user_id


def test_userinfo_refuses_every_misuse_of_a_bound_token(server: Server) -> None:
    key, thief = DeviceKey(), DeviceKey()
    token = dpop_tokens(server, key)["access_token"]
    cases = [
        ("Bearer", None, "invalid_token"),  # §7.2 downgrade to bearer
        ("DPoP", None, "invalid_dpop_proof"),  # no proof
        ("DPoP", key.proof("GET", USERINFO), "invalid_dpop_proof"),  # no ath
        ("DPoP", key.proof("GET", USERINFO, access_token="other"), "invalid_dpop_proof"),
        ("DPoP", thief.proof("GET", USERINFO, access_token=token), "invalid_dpop_proof"),
        ("DPoP", key.proof("POST", USERINFO, access_token=token), "invalid_dpop_proof"),
    ]
    for scheme, proof, error in cases:
        response = userinfo(server, scheme, token, proof)
        assert response.status_code == 401, (scheme, response.text)
        assert response.json()["error"] == error
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("DPoP "), challenge
        assert 'algs="' in challenge
    reasons = {e["details"]["reason"] for e in server.events("oauth.dpop.refused")}
    assert {"bearer_downgrade", "ath", "wrong_key", "htm"} <= reasons


def test_userinfo_refuses_a_bearer_token_under_the_dpop_scheme(server: Server) -> None:
    code = get_code(server.client)
    token = post_token(server, code_request(code)).json()["access_token"]
    key = DeviceKey()
    response = userinfo(server, "DPoP", token, key.proof("GET", USERINFO, access_token=token))
    assert response.status_code == 401
    assert userinfo(server, "Bearer", token).status_code == 200


def test_userinfo_without_credentials_offers_both_schemes(server: Server) -> None:
    response = server.client.get("/userinfo")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="bastion", DPoP algs=')


def test_userinfo_nonce(nonce_server: Server) -> None:
    # RFC 9449 §9: a resource asking for a nonce answers 401 use_dpop_nonce with one.
    server = nonce_server
    key = DeviceKey()
    code = get_code(server.client)
    first = post_token(server, code_request(code), key.proof("POST", TOKEN))
    nonce = first.headers["dpop-nonce"]
    token = post_token(server, code_request(code), key.proof("POST", TOKEN, nonce=nonce)).json()[
        "access_token"
    ]
    asked = userinfo(server, "DPoP", token, key.proof("GET", USERINFO, access_token=token))
    assert asked.status_code == 401
    assert 'error="use_dpop_nonce"' in asked.headers["www-authenticate"]
    fresh = asked.headers["dpop-nonce"]
    ok = userinfo(
        server, "DPoP", token, key.proof("GET", USERINFO, access_token=token, nonce=fresh)
    )
    assert ok.status_code == 200


def test_the_nonce_dance_at_the_par_endpoint(nonce_server: Server) -> None:
    # RFC 9449 §10.1 with §8: a proof sent to /par needs the nonce too, and is told it.
    key = DeviceKey()
    params = authorize_params(scope="openid", state=None, nonce=None)
    par = f"{ISSUER}/par"
    first = nonce_server.client.post("/par", data=params, headers={"DPoP": key.proof("POST", par)})
    assert first.status_code == 400
    assert first.json()["error"] == "use_dpop_nonce"
    nonce = first.headers["dpop-nonce"]
    second = nonce_server.client.post(
        "/par", data=params, headers={"DPoP": key.proof("POST", par, nonce=nonce)}
    )
    assert second.status_code == 201, second.text


def test_the_admin_api_keeps_the_binding(server: Server) -> None:
    # RFC 9449 §7.1, §7.2 at the admin API: a bound admin token needs its proof.
    key = DeviceKey()
    issued = post_token(
        server,
        {
            "grant_type": "client_credentials",
            "scope": "bastion:admin",
            "resource": f"{ISSUER}/admin",
        },
        key.proof("POST", TOKEN),
        auth=("operator-tool", ADMIN_SECRET),
    ).json()
    token = issued["access_token"]
    assert issued["token_type"] == "DPoP"
    users = f"{ISSUER}/admin/users"
    bearer = server.client.get("/admin/users", headers={"authorization": f"Bearer {token}"})
    assert bearer.status_code == 401
    assert bearer.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
    stolen = server.client.get(
        "/admin/users",
        headers={
            "authorization": f"DPoP {token}",
            "DPoP": DeviceKey().proof("GET", users, access_token=token),
        },
    )
    assert stolen.status_code == 401
    ok = server.client.get(
        "/admin/users",
        headers={
            "authorization": f"DPoP {token}",
            "DPoP": key.proof("GET", users, access_token=token),
        },
    )
    assert ok.status_code == 200, ok.text


def test_a_family_begun_without_dpop_is_bound_by_its_first_proof(server: Server) -> None:
    # RFC 9449 §5: a public client's refresh token is bound once a proof comes with it.
    key, thief = DeviceKey(), DeviceKey()
    code = get_code(server.client)
    bearer = post_token(server, code_request(code)).json()
    bound = post_token(server, refresh_request(bearer["refresh_token"]), key.proof("POST", TOKEN))
    assert bound.status_code == 200
    assert bound.json()["token_type"] == "DPoP"
    token = bound.json()["refresh_token"]
    assert post_token(server, refresh_request(token)).status_code == 400
    assert post_token(server, refresh_request(token), thief.proof("POST", TOKEN)).status_code == 400
    assert post_token(server, refresh_request(token), key.proof("POST", TOKEN)).status_code == 200


def test_token_exchange_never_drops_the_binding(server: Server) -> None:
    # RFC 8693 across RFC 9449: without its own proof the exchanger's token keeps the
    # subject's key, so a bound token cannot be laundered into a bearer token.
    key, gateway_key = DeviceKey(), DeviceKey()
    subject = dpop_tokens(server, key, scope="openid orders:read", resource=API)["access_token"]
    kept = exchange(server, subject)
    assert kept.status_code == 200, kept.text
    assert kept.json()["token_type"] == "DPoP"
    assert claims_of(kept.json()["access_token"])["cnf"] == {"jkt": key.jkt}
    own = server.client.post(
        "/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": subject,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "audience": "https://orders.internal",
            "scope": "orders:read",
        },
        auth=("gateway", GATEWAY_SECRET),
        headers={"DPoP": gateway_key.proof("POST", TOKEN)},
    )
    assert claims_of(own.json()["access_token"])["cnf"] == {"jkt": gateway_key.jkt}
    assert server.events("oauth.token.exchanged")[0]["details"]["subject_bound"] is True
