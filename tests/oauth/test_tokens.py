"""Access token verification: type, algorithm and claim checks (RFC 9068 §4, RFC 8725)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey

from bastion.errors import OAuthError
from bastion.oauth.tokens import (
    _claims_problem,
    access_token_claims,
    claims_registry,
    id_token_claims,
    verify_access_token,
)

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


def _registry_problem(
    header: dict[str, Any], claims: dict[str, Any], now: float, audience: str | None
) -> bool:
    """The reference: joserfc's registry, set up as the access token checks used to."""
    if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
        return True
    registry = claims_registry(
        issuer=ISSUER_AT,
        now=now,
        audiences=None if audience is None else [audience],
        required=("exp", "iat", "sub", "client_id", "jti"),
    )
    try:
        registry.validate(dict(claims))
    except JoseError:
        return True
    return any(
        not isinstance(claims.get(n), str) or not claims[n] for n in ("sub", "client_id", "jti")
    )


ISSUER_AT = "https://as.example"
NOW_AT = 1_700_000_000.5
_ODD: st.SearchStrategy[Any] = st.sampled_from(
    [None, "", [], {}, 0, -1, True, False, 1.5, float("nan"), float("inf"), "x", ["x"], [1]]
)
_TIMES = st.one_of(
    st.integers(int(NOW_AT) - 100, int(NOW_AT) + 100),
    st.floats(NOW_AT - 100, NOW_AT + 100),
    _ODD,
)
_CLAIMS = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.one_of(st.just(ISSUER_AT), st.just("https://other.example"), _ODD),
        "sub": st.one_of(st.just("user-1"), _ODD),
        "client_id": st.one_of(st.just("app"), _ODD),
        "jti": st.one_of(st.just("jti-1"), _ODD),
        "aud": st.one_of(
            st.just("https://api"), st.just(["https://api", "x"]), st.just(["y"]), _ODD
        ),
        "exp": _TIMES,
        "iat": _TIMES,
        "nbf": _TIMES,
        "scope": _ODD,
    },
)


@settings(max_examples=400, deadline=None)
@given(
    claims=_CLAIMS,
    audience=st.sampled_from([None, "https://api"]),
    typ=st.sampled_from(["at+jwt", "application/AT+JWT", "JWT"]),
)
def test_access_claims_are_judged_as_joserfc_judges_them(
    claims: dict[str, Any], audience: str | None, typ: str
) -> None:
    """RFC 9068 §4 / RFC 7519 §4.1: the written-out checks accept exactly the claim sets
    joserfc's registry accepts (plus non-empty string ``sub``, ``client_id``, ``jti``)."""
    header = {"typ": typ, "alg": "ES256"}
    ours = _claims_problem(header, claims, issuer=ISSUER_AT, now=NOW_AT, audience=audience)
    assert (ours is not None) == _registry_problem(header, claims, NOW_AT, audience), ours


def test_a_good_access_token_passes_and_each_broken_claim_fails() -> None:
    """RFC 9068 §4: iss, exp (with the clock skew), aud, typ; every one refused alone."""
    good = {
        "iss": ISSUER_AT,
        "sub": "u",
        "client_id": "app",
        "jti": "j",
        "aud": ["https://api"],
        "exp": int(NOW_AT) + 60,
        "iat": int(NOW_AT),
    }
    header = {"typ": "at+jwt"}
    assert (
        _claims_problem(header, good, issuer=ISSUER_AT, now=NOW_AT, audience="https://api") is None
    )
    for broken in (
        {"iss": "https://evil.example"},
        {"exp": int(NOW_AT) - 30},
        {"exp": float("nan")},
        {"iat": int(NOW_AT) + 31},
        {"nbf": int(NOW_AT) + 31},
        {"aud": ["https://other"]},
        {"jti": ""},
    ):
        claims = {**good, **broken}
        assert _claims_problem(
            header, claims, issuer=ISSUER_AT, now=NOW_AT, audience="https://api"
        ), broken
    assert _claims_problem({"typ": "JWT"}, good, issuer=ISSUER_AT, now=NOW_AT, audience=None)
