"""Tokens from an external issuer, verified with its JWKS fetched over HTTP (from an
upstream served in process)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from bastion.clock import FixedClock
from tests.gateway.conftest import GatewayHarness, gateway_app
from tests.support.inprocess import InProcess
from tests.support.recorder import Answer, Recorder

PARTNER = "https://idp.partner.example"
AUDIENCE = "https://api.example.com"

CONFIG = """
issuer = "http://127.0.0.1:8000"
[[gateway.upstreams]]
name = "api"
url = "{url}"
[[gateway.issuers]]
name = "partner"
issuer = "{partner}"
jwks_uri = "{url}/jwks"
audience = "{audience}"
algorithms = ["RS256"]
jwks_max_age = "5m"
jwks_min_refresh_interval = "30s"
[[gateway.routes]]
methods = ["GET"]
path = "/partner"
upstream = "api"
auth = ["partner"]
scopes = ["read"]
[[gateway.routes]]
methods = ["GET"]
path = "/either"
upstream = "api"
auth = ["bastion", "partner"]
"""


@pytest.fixture
def partner_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})


@pytest.fixture
def recorder(partner_key: RSAKey) -> Recorder:
    recorder = Recorder()
    recorder.answers["/jwks"] = Answer(body={"keys": [partner_key.as_dict(private=False)]})
    return recorder


@pytest.fixture
def gw(
    tmp_path: Path, recorder: Recorder, environ: dict[str, str], now: FixedClock
) -> Iterator[GatewayHarness]:
    upstreams = InProcess()
    body = CONFIG.format(url=upstreams.serve(recorder), partner=PARTNER, audience=AUDIENCE)
    with gateway_app(tmp_path, body, environ, clock=now, transport=upstreams) as harness:
        yield harness


def _token(key: Any, now: float, alg: str = "RS256", **changes: Any) -> str:
    claims = {
        "iss": PARTNER,
        "sub": "partner-user-1",
        "aud": AUDIENCE,
        "client_id": "partner-app",
        "scope": "read write",
        "iat": int(now),
        "exp": int(now) + 300,
        "jti": "j1",
    }
    header = {"alg": alg, "typ": changes.pop("typ", "at+jwt"), "kid": changes.pop("kid", "k1")}
    claims.update(changes)
    return jwt.encode(
        header, {k: v for k, v in claims.items() if v is not None}, key, algorithms=[alg]
    )


def _jwks_fetches(recorder: Recorder) -> int:
    return sum(1 for s in recorder.seen if s.raw_path == b"/jwks")


def test_partner_token_is_accepted_and_exchanged(
    gw: GatewayHarness, recorder: Recorder, partner_key: RSAKey, now: FixedClock
) -> None:
    token = _token(partner_key, now.now())
    answer = gw.client.get("/api/partner", headers=gw.bearer(token))
    assert answer.status_code == 200, answer.text
    internal = recorder.last.headers["authorization"]
    assert token not in internal
    # Cached: a second request neither refetches the JWKS nor verifies again.
    assert gw.client.get("/api/partner", headers=gw.bearer(token)).status_code == 200
    assert _jwks_fetches(recorder) == 1
    # A Bastion token is not accepted where only the partner is.
    bastion_token = gw.mint(scope=("read",))
    assert gw.client.get("/api/partner", headers=gw.bearer(bastion_token)).status_code == 401
    assert gw.client.get("/api/either", headers=gw.bearer(bastion_token)).status_code == 200


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "https://other.example"},
        {"iss": "https://evil.example"},
        {"typ": "JWT"},  # RFC 9068 §4: an ID token is not an access token
        {"exp": int(time.time()) - 3600},
        {"nbf": int(time.time()) + 3600},
        {"sub": None},
    ],
)
def test_partner_claims_are_checked(
    gw: GatewayHarness, partner_key: RSAKey, now: FixedClock, changes: dict[str, Any]
) -> None:
    """RFC 7519 §4.1, RFC 9068 §4."""
    token = _token(partner_key, now.now(), **changes)
    assert gw.client.get("/api/partner", headers=gw.bearer(token)).status_code == 401


def test_algorithm_confusion_is_refused(
    gw: GatewayHarness, partner_key: RSAKey, now: FixedClock
) -> None:
    """RFC 8725 §2.1: an HMAC token keyed with the issuer's public key must not verify."""

    def part(data: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=")

    header = part({"alg": "HS256", "typ": "at+jwt", "kid": "k1"})
    claims = part({"iss": PARTNER, "sub": "x", "aud": AUDIENCE, "exp": int(now.now()) + 60})
    secret = partner_key.as_pem(private=False)
    mac = hmac.new(secret, header + b"." + claims, hashlib.sha256).digest()
    token = (header + b"." + claims + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()
    assert gw.client.get("/api/partner", headers=gw.bearer(token)).status_code == 401
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    forged = _token(stranger, now.now())
    assert gw.client.get("/api/partner", headers=gw.bearer(forged)).status_code == 401


def test_unsigned_and_critical_header_tokens_are_refused(
    gw: GatewayHarness, partner_key: RSAKey, now: FixedClock
) -> None:
    """RFC 7515 §4.1.1 and §4.1.11 on the cache-miss path: ``alg: none`` never verifies,
    and a ``crit`` extension the gateway does not understand refuses the token."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    claims = part({"iss": PARTNER, "sub": "x", "aud": AUDIENCE, "exp": int(now.now()) + 60})
    good = _token(partner_key, now.now())
    signature = good.rsplit(".", 1)[1]
    for header in (
        {"alg": "none", "typ": "at+jwt"},
        {"alg": "RS256", "typ": "at+jwt", "kid": "k1", "crit": ["x-bind"], "x-bind": 1},
    ):
        for tail in ("", signature):
            answer = gw.client.get(
                "/api/partner", headers=gw.bearer(f"{part(header)}.{claims}.{tail}")
            )
            assert answer.status_code == 401
            assert answer.headers["content-type"] == "application/problem+json"
    assert gw.client.get("/api/partner", headers=gw.bearer(good)).status_code == 200


def test_unknown_kid_refetches_at_a_bounded_rate(
    gw: GatewayHarness, recorder: Recorder, partner_key: RSAKey, now: FixedClock
) -> None:
    assert (
        gw.client.get("/api/partner", headers=gw.bearer(_token(partner_key, now.now()))).status_code
        == 200
    )
    stranger = RSAKey.generate_key(2048, parameters={"kid": "rotated"})
    for i in range(5):
        forged = _token(stranger, now.now(), kid=f"unknown-{i}")
        assert gw.client.get("/api/partner", headers=gw.bearer(forged)).status_code == 401
    assert _jwks_fetches(recorder) == 1  # within the minimum refresh interval: no refetch

    # The issuer rotates: after the interval, a new kid is fetched and accepted.
    recorder.answers["/jwks"] = Answer(body={"keys": [stranger.as_dict(private=False)]})
    now.advance(31)
    rotated = _token(stranger, now.now(), kid="rotated")
    assert gw.client.get("/api/partner", headers=gw.bearer(rotated)).status_code == 200
    assert _jwks_fetches(recorder) == 2


def test_jwks_outage_serves_cached_keys(
    gw: GatewayHarness, recorder: Recorder, partner_key: RSAKey, now: FixedClock
) -> None:
    first = _token(partner_key, now.now(), jti="a")
    assert gw.client.get("/api/partner", headers=gw.bearer(first)).status_code == 200
    recorder.answers["/jwks"] = Answer(status=503, body={})
    now.advance(600)  # past jwks_max_age: a refetch is attempted and fails
    second = _token(partner_key, now.now(), jti="b")
    assert gw.client.get("/api/partner", headers=gw.bearer(second)).status_code == 200
    assert _jwks_fetches(recorder) == 2


def test_no_jwks_at_all_fails_closed_with_503(
    tmp_path: Path, environ: dict[str, str], partner_key: RSAKey, now: FixedClock
) -> None:
    recorder = Recorder()
    recorder.answers["/jwks"] = Answer(status=500, body={})
    upstreams = InProcess()
    body = CONFIG.format(url=upstreams.serve(recorder), partner=PARTNER, audience=AUDIENCE)
    with gateway_app(tmp_path, body, environ, clock=now, transport=upstreams) as gw:
        token = _token(partner_key, now.now())
        answer = gw.client.get("/api/partner", headers=gw.bearer(token))
        assert answer.status_code == 503
        assert answer.headers["retry-after"]


def test_internal_token_names_the_partner_user_in_its_own_namespace(
    gw: GatewayHarness, recorder: Recorder, partner_key: RSAKey, now: FixedClock
) -> None:
    """A partner's "u1" is not Bastion's user "u1"; its acr claims are not Bastion's levels."""
    token = _token(partner_key, now.now(), acr="urn:bastion:acr:mfa", amr=["hwk"])
    assert gw.client.get("/api/partner", headers=gw.bearer(token)).status_code == 200
    _, _, internal = recorder.last.headers["authorization"].partition(" ")
    payload = internal.split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == "partner|partner-user-1"
    assert claims["act"] == {"sub": "partner-app", "client_id": "partner-app", "iss": "partner"}
    assert "acr" not in claims
    assert "amr" not in claims


def test_sender_constrained_tokens_are_not_bearer_tokens(
    gw: GatewayHarness, partner_key: RSAKey, now: FixedClock
) -> None:
    """RFC 9449 §7, RFC 8705 §3: a token with "cnf" needs its proof; without one, refused."""
    token = _token(
        partner_key, now.now(), cnf={"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
    )
    assert gw.client.get("/api/partner", headers=gw.bearer(token)).status_code == 401


def test_scope_forms(gw: GatewayHarness, partner_key: RSAKey, now: FixedClock) -> None:
    for scopes in (["read"], "read write"):
        token = _token(partner_key, now.now(), scope=None, scp=scopes, jti=str(scopes))
        assert gw.client.get("/api/partner", headers=gw.bearer(token)).status_code == 200
    odd = _token(partner_key, now.now(), scope=None, scp={"read": True}, jti="odd")
    assert gw.client.get("/api/partner", headers=gw.bearer(odd)).status_code == 403


def test_a_large_key_set_is_read_whole(
    tmp_path: Path, environ: dict[str, str], now: FixedClock
) -> None:
    """JWKS documents arrive in several chunks; every one of them counts."""
    from joserfc.jwk import ECKey

    keys = [ECKey.generate_key("P-256", parameters={"kid": f"k{i}"}) for i in range(150)]
    recorder = Recorder()
    recorder.answers["/jwks"] = Answer(body={"keys": [k.as_dict(private=False) for k in keys]})
    upstreams = InProcess()
    body = CONFIG.format(url=upstreams.serve(recorder), partner=PARTNER, audience=AUDIENCE)
    body = body.replace('algorithms = ["RS256"]', 'algorithms = ["ES256"]')
    with gateway_app(tmp_path, body, environ, clock=now, transport=upstreams) as gw:
        token = _token(keys[-1], now.now(), alg="ES256", kid="k149")
        assert gw.client.get("/api/partner", headers=gw.bearer(token)).status_code == 200
