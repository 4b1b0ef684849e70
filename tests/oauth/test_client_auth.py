"""Client authentication (RFC 6749 §2.3, §5.2; RFC 7523 §3; OpenID Connect Core §9)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote_plus

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from bastion.errors import OAuthError
from bastion.oauth.client_auth import JWT_BEARER, authenticate, presented
from bastion.oauth.clients import CLIENT_CREDENTIALS, Client, hash_secret
from bastion.oauth.params import parse

ISSUER = "https://auth.example.com"
NOW = 1_700_000_000.0
SECRET = "s3cr:et/with+odd chars"
CLIENT_KEY = ECKey.generate_key("P-256", parameters={"kid": "c1"})

BASIC = Client(
    client_id="svc:1",
    client_type="confidential",
    auth_method="client_secret_basic",
    grant_types=frozenset({CLIENT_CREDENTIALS}),
    secret_hash=hash_secret(SECRET),
)
JWT_CLIENT = Client(
    client_id="svc-jwt",
    client_type="confidential",
    auth_method="private_key_jwt",
    grant_types=frozenset({CLIENT_CREDENTIALS}),
    jwks={"keys": [{**CLIENT_KEY.as_dict(private=False), "kid": "c1"}]},
)
PUBLIC = Client(
    client_id="app",
    client_type="public",
    auth_method="none",
    redirect_uris=("com.example.app:/cb",),
)
CLIENTS = {c.client_id: c for c in (BASIC, JWT_CLIENT, PUBLIC)}


def basic(client_id: str, secret: str) -> str:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def assertion(**overrides: Any) -> str:
    claims = {
        "iss": "svc-jwt",
        "sub": "svc-jwt",
        "aud": ISSUER,
        "jti": "jti-12345678",
        "exp": int(NOW + 60),
        "iat": int(NOW),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "ES256", "kid": "c1"}, claims, CLIENT_KEY, algorithms=["ES256"])


def auth(authorization: str | None = None, **form: str) -> tuple[Client, str | None, float | None]:
    credentials = presented(authorization, parse(list(form.items())))
    return authenticate(CLIENTS.get(credentials.client_id), credentials, issuer=ISSUER, now=NOW)


def jwt_form(token: str) -> dict[str, str]:
    return {"client_assertion_type": JWT_BEARER, "client_assertion": token}


def test_basic_with_form_encoded_credentials() -> None:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded inside Basic."""
    client, _, _ = auth(basic("svc:1", SECRET))
    assert client.client_id == "svc:1"


def test_private_key_jwt_returns_jti_for_replay_checks() -> None:
    client, jti, exp = auth(**jwt_form(assertion()))
    assert client.client_id == "svc-jwt"
    assert (jti, exp) == ("jti-12345678", NOW + 60)


def test_public_client_by_id() -> None:
    assert auth(client_id="app")[0].client_id == "app"


def expect_invalid_client(authorization: str | None = None, **form: str) -> None:
    with pytest.raises(OAuthError) as caught:
        auth(authorization, **form)
    assert caught.value.error == "invalid_client"
    assert caught.value.status == 401
    assert caught.value.description == "client authentication failed", "one opaque failure"


def test_wrong_secret() -> None:
    expect_invalid_client(basic("svc:1", "guess"))


def test_unknown_client() -> None:
    expect_invalid_client(basic("nobody", SECRET))
    expect_invalid_client(client_id="nobody")


def test_a_confidential_client_cannot_skip_authentication() -> None:
    expect_invalid_client(client_id="svc:1")


def test_a_public_client_cannot_present_a_secret() -> None:
    expect_invalid_client(basic("app", "anything"))


def test_malformed_basic() -> None:
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(), "Bearer x"):
        expect_invalid_client(header)


def test_two_methods_at_once_are_refused() -> None:
    """RFC 6749 §2.3: a client MUST NOT use more than one authentication method."""
    with pytest.raises(OAuthError) as caught:
        auth(basic("svc-jwt", "x"), **jwt_form(assertion()))
    assert caught.value.error == "invalid_request"


def test_client_secret_post_is_not_supported() -> None:
    with pytest.raises(OAuthError) as caught:
        auth(client_id="svc:1", client_secret=SECRET)
    assert caught.value.error == "invalid_request"


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": f"{ISSUER}/token"},  # audience must be the issuer, nothing else
        {"aud": [ISSUER, "https://other"]},
        {"aud": None},
        {"iss": "someone-else"},
        {"sub": "someone-else"},
        {"exp": int(NOW - 60)},
        {"exp": int(NOW + 3600)},  # too long-lived to be a one-time assertion
        {"exp": None},
        {"jti": None},
        {"jti": "short"},
        {"iat": int(NOW + 3600)},
    ],
)
def test_assertion_claims(overrides: dict[str, Any]) -> None:
    expect_invalid_client(**jwt_form(assertion(**overrides)))


def test_assertion_signed_by_another_key() -> None:
    other = ECKey.generate_key("P-256", parameters={"kid": "c1"})
    token = jwt.encode(
        {"alg": "ES256", "kid": "c1"},
        {"iss": "svc-jwt", "sub": "svc-jwt", "aud": ISSUER, "jti": "j" * 10, "exp": int(NOW + 60)},
        other,
        algorithms=["ES256"],
    )
    expect_invalid_client(**jwt_form(token))


def test_unsigned_assertion() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=")
    body = assertion().split(".")[1]
    expect_invalid_client(**jwt_form(f"{header}.{body}."))


def test_wrong_assertion_type() -> None:
    expect_invalid_client(client_assertion_type="urn:other", client_assertion=assertion())
