"""Access token verification: type, algorithm and claim checks (RFC 9068 §4, RFC 8725)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey

from bastion.errors import OAuthError
from bastion.oauth.tokens import access_token_claims, id_token_claims, verify_access_token

ISSUER = "https://auth.example.com"
NOW = 1_700_000_000.0
KEY = ECKey.generate_key("P-256", parameters={"kid": "k1"})
JWKS = {"keys": [{**KEY.as_dict(private=False), "kid": "k1", "alg": "ES256", "use": "sig"}]}


def claims(**overrides: Any) -> dict[str, Any]:
    base = access_token_claims(
        issuer=ISSUER,
        subject="u1",
        client_id="app",
        scope=("orders:read",),
        audience=("https://api.example.com",),
        now=NOW,
        lifetime=300,
        auth_time=NOW - 10,
        acr="pwd",
        amr=("pwd",),
    )
    base.update(overrides)
    return base


def sign(payload: dict[str, Any], typ: str = "at+jwt", alg: str = "ES256") -> str:
    return jwt.encode({"alg": alg, "kid": "k1", "typ": typ}, payload, KEY, algorithms=[alg])


def verify(token: str, **kwargs: Any) -> dict[str, Any]:
    return verify_access_token(token, JWKS, issuer=ISSUER, now=NOW + 1, **kwargs)


def test_rfc9068_claims_verify() -> None:
    verified = verify(sign(claims()), audience="https://api.example.com")
    for name in (
        "iss",
        "sub",
        "aud",
        "client_id",
        "scope",
        "jti",
        "iat",
        "exp",
        "auth_time",
        "acr",
        "amr",
    ):
        assert name in verified


def test_an_id_token_is_not_an_access_token() -> None:
    """RFC 9068 §4: verify typ, so a token of another kind cannot be substituted."""
    id_token = id_token_claims(
        issuer=ISSUER,
        subject="u1",
        client_id="app",
        now=NOW,
        lifetime=300,
        auth_time=NOW,
        nonce="n",
        acr=None,
        amr=(),
    )
    with pytest.raises(OAuthError) as caught:
        verify(sign({**id_token, "client_id": "app", "jti": "j"}, typ="JWT"))
    assert caught.value.error == "invalid_token"


@pytest.mark.parametrize(
    "change",
    [
        {"iss": "https://evil.example.com"},
        {"exp": NOW - 60},
        {"iat": NOW + 3600},
        {"nbf": NOW + 3600},
        {"jti": ""},
        {"sub": None},
    ],
)
def test_bad_claims(change: dict[str, Any]) -> None:
    with pytest.raises(OAuthError):
        verify(sign(claims(**change)))


def test_wrong_audience() -> None:
    with pytest.raises(OAuthError):
        verify(sign(claims()), audience="https://other.example.com")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_alg_none_is_refused() -> None:
    """RFC 8725 §3.1: never accept "none"."""
    token = f"{_b64({'alg': 'none', 'typ': 'at+jwt'})}.{_b64(claims())}."
    with pytest.raises(OAuthError):
        verify(token)


def test_hmac_with_the_public_key_as_secret_is_refused() -> None:
    """RFC 8725 §3.1: algorithm confusion, signing HS256 with the public key bytes."""
    public_pem = KEY.as_pem(private=False)
    signing_input = f"{_b64({'alg': 'HS256', 'kid': 'k1', 'typ': 'at+jwt'})}.{_b64(claims())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    with pytest.raises(OAuthError):
        verify(forged)


def test_a_key_not_in_the_set_is_refused() -> None:
    stranger = OKPKey.generate_key("Ed25519", parameters={"kid": "k1"})
    forged = jwt.encode(
        {"alg": "Ed25519", "kid": "k1", "typ": "at+jwt"}, claims(), stranger, algorithms=["Ed25519"]
    )
    with pytest.raises(OAuthError):
        verify(forged)


def test_tampered_payload_is_refused() -> None:
    header, _, signature = sign(claims()).split(".")
    forged = f"{header}.{_b64(claims(scope='admin'))}.{signature}"
    with pytest.raises(OAuthError):
        verify(forged)


@pytest.mark.parametrize("junk", ["", "x", "a.b.c", "....", "eyJ.eyJ.sig"])
def test_junk_is_invalid_token(junk: str) -> None:
    with pytest.raises(OAuthError):
        verify(junk)
