"""DPoP at the gateway (RFC 9449 §7): a bound token needs a fresh proof by its key on
every request, whatever the verified-token cache holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from bastion.clock import FixedClock
from bastion.oauth.clients import hash_secret
from tests.conftest import write_config
from tests.gateway.conftest import GatewayHarness, gateway_app
from tests.support.dpop import DeviceKey
from tests.support.inprocess import InProcess
from tests.support.recorder import Answer, Recorder
from tests.support.server import bastion, serving
from tests.support.services import free_port, unique_name

ISSUER = "http://127.0.0.1:8000"
PARTNER = "https://idp.partner.example"
AUDIENCE = "https://api.example.com"

CONFIG = """
issuer = "http://127.0.0.1:8000"
[oauth]
dpop = {{ require_nonce = {nonce} }}
[[oauth.clients]]
client_id = "noncey"
redirect_uris = ["com.example.noncey:/cb"]
require_dpop_nonce = true
[[gateway.upstreams]]
name = "api"
url = "{url}"
credential = {{ type = "token_exchange", audience = "https://orders.internal" }}
[[gateway.issuers]]
name = "partner"
issuer = "{partner}"
jwks_uri = "{url}/jwks"
audience = "{audience}"
algorithms = ["ES256"]
[[gateway.routes]]
methods = ["GET", "POST"]
path = "/orders"
upstream = "api"
auth = "bastion"
[[gateway.routes]]
methods = ["GET"]
path = "/strict"
upstream = "api"
auth = "bastion"
require_dpop = true
[[gateway.routes]]
methods = ["GET"]
path = "/items/{{item_id}}"
upstream = "api"
auth = "bastion"
[[gateway.routes]]
methods = ["GET"]
path = "/partner"
upstream = "api"
auth = ["partner"]
"""
ORDERS = f"{ISSUER}/api/orders"


@pytest.fixture
def partner_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "p1"})


def harness(
    tmp_path: Path, environ: dict[str, str], now: FixedClock, partner_key: ECKey, nonce: bool
) -> Iterator[tuple[GatewayHarness, Recorder]]:
    recorder = Recorder()
    recorder.answers["/jwks"] = Answer(body={"keys": [partner_key.as_dict(private=False)]})
    upstreams = InProcess()
    body = CONFIG.format(
        url=upstreams.serve(recorder),
        partner=PARTNER,
        audience=AUDIENCE,
        nonce="true" if nonce else "false",
    )
    with gateway_app(tmp_path, body, environ, clock=now, transport=upstreams) as gw:
        yield gw, recorder


@pytest.fixture
def gw(
    tmp_path: Path, environ: dict[str, str], now: FixedClock, partner_key: ECKey
) -> Iterator[tuple[GatewayHarness, Recorder]]:
    yield from harness(tmp_path, environ, now, partner_key, nonce=False)


def call(
    gw: GatewayHarness,
    token: str,
    proof: str | None,
    *,
    scheme: str = "DPoP",
    path: str = "/api/orders",
    method: str = "GET",
) -> Any:
    headers = {"authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return gw.client.request(method, path, headers=headers)


def refused(response: Any, error: str) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f'DPoP error="{error}"'), challenge
    assert 'algs="ES256' in challenge


def test_a_bound_token_with_its_proof_reaches_the_upstream(
    gw: tuple[GatewayHarness, Recorder], now: FixedClock
) -> None:
    # RFC 9449 §7.1.
    harness_, recorder = gw
    key = DeviceKey()
    token = harness_.mint(jkt=key.jkt)
    response = call(harness_, token, key.proof("GET", ORDERS, access_token=token, iat=now.now()))
    assert response.status_code == 200, response.text
    seen = recorder.last
    # The upstream gets an internal token: neither the app's token nor its proof, which
    # it could replay at Bastion.
    assert "dpop" not in seen.headers
    assert token not in seen.headers.get("authorization", "")
    assert seen.headers["authorization"].startswith("Bearer ")


def test_every_request_needs_its_own_proof_even_with_the_token_cached(
    gw: tuple[GatewayHarness, Recorder], now: FixedClock
) -> None:
    # §11.1: the cache keeps the token's claims, never the proof.
    harness_, _ = gw
    key = DeviceKey()
    token = harness_.mint(jkt=key.jkt)
    proof = key.proof("GET", ORDERS, access_token=token, iat=now.now())
    assert call(harness_, token, proof).status_code == 200
    refused(call(harness_, token, proof), "invalid_dpop_proof")
    refused(call(harness_, token, None), "invalid_dpop_proof")
    second = key.proof("GET", ORDERS, access_token=token, iat=now.now())
    assert call(harness_, token, second).status_code == 200
    reasons = [e["details"]["reason"] for e in harness_.events("oauth.dpop.refused")]
    assert reasons == ["replay", "missing"]


def test_a_token_refused_under_the_dpop_scheme_is_answered_in_that_scheme(
    gw: tuple[GatewayHarness, Recorder], now: FixedClock
) -> None:
    # RFC 9449 §7.1: the challenge names the scheme the request used, so a DPoP client
    # (which reads DPoP challenges for use_dpop_nonce) sees why it was refused.
    harness_, _ = gw
    key = DeviceKey()
    token = harness_.mint(jkt=key.jkt)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    refused(call(harness_, forged, key.proof("GET", ORDERS, access_token=forged)), "invalid_token")
    missing = harness_.client.get("/api/orders")
    assert missing.status_code == 401
    challenge = missing.headers["www-authenticate"]
    # §7.2: without credentials, both schemes are offered.
    assert challenge.startswith('Bearer realm="bastion", DPoP algs="ES256'), challenge


def test_a_bound_token_sent_as_bearer_is_refused(
    gw: tuple[GatewayHarness, Recorder], now: FixedClock
) -> None:
    # §7.2: the downgrade to Bearer must not strip the binding.
    harness_, recorder = gw
    key = DeviceKey()
    token = harness_.mint(jkt=key.jkt)
    proof = key.proof("GET", ORDERS, access_token=token, iat=now.now())
    refused(call(harness_, token, proof, scheme="Bearer"), "invalid_token")
    assert not recorder.seen
    assert harness_.events("oauth.dpop.refused")[0]["details"]["reason"] == "bearer_downgrade"


@pytest.mark.parametrize(
    "attack",
    ["other key", "no ath", "other token", "other path", "other method", "stale", "query trick"],
)
def test_proofs_not_made_for_this_request_are_refused(
    gw: tuple[GatewayHarness, Recorder], now: FixedClock, attack: str
) -> None:
    harness_, recorder = gw
    key, thief = DeviceKey(), DeviceKey()
    token = harness_.mint(jkt=key.jkt)
    t = now.now()
    proof = {
        "other key": thief.proof("GET", ORDERS, access_token=token, iat=t),
        "no ath": key.proof("GET", ORDERS, iat=t),
        "other token": key.proof("GET", ORDERS, access_token=harness_.mint(jkt=key.jkt), iat=t),
        "other path": key.proof("GET", f"{ISSUER}/api/strict", access_token=token, iat=t),
        "other method": key.proof("POST", ORDERS, access_token=token, iat=t),
        "stale": key.proof("GET", ORDERS, access_token=token, iat=t - 120),
        "query trick": key.proof("GET", f"{ISSUER}/api/orders%3F", access_token=token, iat=t),
    }[attack]
    refused(call(harness_, token, proof), "invalid_dpop_proof")
    assert not recorder.seen


def test_htu_is_compared_with_the_path_as_sent(
    gw: tuple[GatewayHarness, Recorder], now: FixedClock
) -> None:
    # §4.3: the URI the app called, percent-encoding and all (RFC 3986 §6.2.2.2 aside).
    harness_, _ = gw
    key = DeviceKey()
    token = harness_.mint(jkt=key.jkt)
    path = "/api/items/caf%C3%A9"
    proof = key.proof("GET", f"{ISSUER}{path}", access_token=token, iat=now.now())
    assert call(harness_, token, proof, path=path).status_code == 200
    # An unreserved character encoded on one side only is the same URI.
    proof = key.proof("GET", f"{ISSUER}/api/items/%61bc", access_token=token, iat=now.now())
    assert call(harness_, token, proof, path="/api/items/abc").status_code == 200
    proof = key.proof("GET", f"{ISSUER}/api/items/abd", access_token=token, iat=now.now())
    refused(call(harness_, token, proof, path="/api/items/abc"), "invalid_dpop_proof")


def test_an_unbound_token_under_the_dpop_scheme_is_refused(
    gw: tuple[GatewayHarness, Recorder], now: FixedClock
) -> None:
    harness_, _ = gw
    key = DeviceKey()
    token = harness_.mint()
    refused(
        call(harness_, token, key.proof("GET", ORDERS, access_token=token, iat=now.now())),
        "invalid_token",
    )
    # As a bearer token it still works where the route allows bearer tokens.
    assert call(harness_, token, None, scheme="Bearer").status_code == 200


def test_a_route_can_require_sender_constrained_tokens(
    gw: tuple[GatewayHarness, Recorder], now: FixedClock
) -> None:
    harness_, _ = gw
    key = DeviceKey()
    bearer = harness_.mint()
    refused(call(harness_, bearer, None, scheme="Bearer", path="/api/strict"), "invalid_token")
    bound = harness_.mint(jkt=key.jkt)
    proof = key.proof("GET", f"{ISSUER}/api/strict", access_token=bound, iat=now.now())
    assert call(harness_, bound, proof, path="/api/strict").status_code == 200


def partner_token(key: ECKey, now: float, **claims: Any) -> str:
    payload = {
        "iss": PARTNER,
        "sub": "p-user",
        "aud": AUDIENCE,
        "client_id": "partner-app",
        "iat": int(now),
        "exp": int(now) + 300,
        **claims,
    }
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "p1"}, payload, key)


def test_an_external_issuers_bound_token_is_accepted_with_its_proof(
    gw: tuple[GatewayHarness, Recorder], now: FixedClock, partner_key: ECKey
) -> None:
    harness_, _ = gw
    key = DeviceKey()
    url = f"{ISSUER}/api/partner"
    token = partner_token(partner_key, now.now(), cnf={"jkt": key.jkt})
    proof = key.proof("GET", url, access_token=token, iat=now.now())
    assert call(harness_, token, proof, path="/api/partner").status_code == 200
    refused(call(harness_, token, None, scheme="Bearer", path="/api/partner"), "invalid_token")
    # A constraint Bastion cannot check (RFC 8705 mTLS) is still refused outright.
    mtls = partner_token(partner_key, now.now(), cnf={"x5t#S256": "abc"})
    assert call(harness_, mtls, None, scheme="Bearer", path="/api/partner").status_code == 401


def test_traffic_is_counted_per_client_and_scheme(
    gw: tuple[GatewayHarness, Recorder], now: FixedClock
) -> None:
    harness_, _ = gw
    key = DeviceKey()
    bound = harness_.mint(jkt=key.jkt)
    call(harness_, bound, key.proof("GET", ORDERS, access_token=bound, iat=now.now()))
    call(harness_, harness_.mint(), None, scheme="Bearer")
    call(harness_, harness_.mint(), None, scheme="Bearer")
    traffic = harness_.runtime.auth.dpop.traffic
    assert traffic[("mobile", "dpop")] == 1
    assert traffic[("mobile", "bearer")] == 2


def test_the_nonce_dance_at_the_gateway(
    tmp_path: Path, environ: dict[str, str], now: FixedClock, partner_key: ECKey
) -> None:
    # RFC 9449 §9: 401 use_dpop_nonce with DPoP-Nonce, then the proof carries it.
    for gw_, _ in harness(tmp_path, environ, now, partner_key, nonce=True):
        key = DeviceKey()
        token = gw_.mint(jkt=key.jkt)
        first = call(gw_, token, key.proof("GET", ORDERS, access_token=token, iat=now.now()))
        refused(first, "use_dpop_nonce")
        nonce = first.headers["dpop-nonce"]
        proof = key.proof("GET", ORDERS, access_token=token, iat=now.now(), nonce=nonce)
        assert call(gw_, token, proof).status_code == 200


def test_a_proof_used_at_one_process_is_refused_by_another(
    tmp_path: Path, redis_url: str, master_key_b64: str
) -> None:
    # §11.1 across processes: two servers sharing Redis share the memory of jti values.
    secret = "backend-secret-0123456789abcdefghijklmnopqrstuv"
    config = write_config(
        tmp_path,
        f"""
issuer = "{ISSUER}"
[hot_state]
key_prefix = "{unique_name("dpop")}:"
[[oauth.clients]]
client_id = "backend"
type = "confidential"
grant_types = ["client_credentials"]
scopes = ["reports"]
secret_sha256 = "{hash_secret(secret)}"
""",
    )
    env = {
        "BASTION_MASTER_KEY": master_key_b64,
        "BASTION_CONFIG": "",
        "BASTION_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
        "BASTION_REDIS_URL": redis_url,
    }
    assert bastion(["db", "upgrade", "-c", str(config)], env).returncode == 0
    ports = [free_port(), free_port()]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    key = DeviceKey()
    proof = key.proof("POST", f"{ISSUER}/token")
    data = {"grant_type": "client_credentials", "scope": "reports"}
    with (
        serving(["-c", str(config), "--port", str(ports[0])], env, bases[0]),
        serving(["-c", str(config), "--port", str(ports[1])], env, bases[1]),
    ):
        first = httpx.post(
            f"{bases[0]}/token", data=data, auth=("backend", secret), headers={"DPoP": proof}
        )
        again = httpx.post(
            f"{bases[1]}/token", data=data, auth=("backend", secret), headers={"DPoP": proof}
        )
        fresh = httpx.post(
            f"{bases[1]}/token",
            data=data,
            auth=("backend", secret),
            headers={"DPoP": key.proof("POST", f"{ISSUER}/token")},
        )
    assert first.status_code == 200, first.text
    assert first.json()["token_type"] == "DPoP"
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_dpop_proof"
    assert fresh.status_code == 200


def test_a_clients_own_nonce_switch_holds_at_the_gateway(
    gw: tuple[GatewayHarness, Recorder], now: FixedClock
) -> None:
    # RFC 9449 §9 for a client that asked for nonces (require_dpop_nonce) alone.
    harness_, _ = gw
    key = DeviceKey()
    token = harness_.mint(client_id="noncey", jkt=key.jkt)
    first = call(harness_, token, key.proof("GET", ORDERS, access_token=token, iat=now.now()))
    refused(first, "use_dpop_nonce")
    nonce = first.headers["dpop-nonce"]
    proof = key.proof("GET", ORDERS, access_token=token, iat=now.now(), nonce=nonce)
    assert call(harness_, token, proof).status_code == 200
    # Other clients are not asked.
    other = harness_.mint(jkt=key.jkt)
    assert (
        call(
            harness_, other, key.proof("GET", ORDERS, access_token=other, iat=now.now())
        ).status_code
        == 200
    )


def test_dpop_scheme_without_a_proof_is_audited_as_missing(
    gw: tuple[GatewayHarness, Recorder], now: FixedClock
) -> None:
    harness_, _ = gw
    key = DeviceKey()
    token = harness_.mint(jkt=key.jkt)
    refused(call(harness_, token, None), "invalid_dpop_proof")
    assert harness_.events("oauth.dpop.refused")[-1]["details"]["reason"] == "missing"
