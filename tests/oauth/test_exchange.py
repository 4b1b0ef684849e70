"""Token exchange policy (RFC 8693 §2.1, §5): whose tokens a client may swap, for how long."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bastion.errors import OAuthError
from bastion.oauth import exchange
from bastion.oauth.clients import TOKEN_EXCHANGE, Client

API = "https://api.example.com"
GATEWAY = Client(
    client_id="gateway",
    client_type="confidential",
    auth_method="client_secret_basic",
    grant_types=frozenset({TOKEN_EXCHANGE}),
    resources=frozenset({"https://orders.internal", API}),
    exchange_subject_audiences=frozenset({API}),
    secret_hash="0" * 64,
)
PARTNER = Client(
    client_id="partner",
    client_type="confidential",
    auth_method="client_secret_basic",
    grant_types=frozenset({TOKEN_EXCHANGE}),
    resources=frozenset({API}),
    secret_hash="0" * 64,
)
NOW = 1_700_000_000.0


def claims(**overrides: Any) -> dict[str, Any]:
    return {"sub": "alice", "client_id": "mobile", "aud": API, **overrides}


@pytest.mark.parametrize(
    "subject",
    [
        claims(),
        claims(aud=["https://other.example", API]),
        claims(client_id="gateway", aud="https://elsewhere.example"),
    ],
)
def test_tokens_issued_for_or_to_the_client_are_accepted(subject: dict[str, Any]) -> None:
    exchange.check_subject(subject, GATEWAY)


@pytest.mark.parametrize(
    ("client", "subject"),
    [
        (GATEWAY, claims(aud="https://as.example.com")),
        (GATEWAY, claims(aud=[])),
        (GATEWAY, claims(aud=None)),
        (PARTNER, claims()),  # may ask for the API's audience, but is not the API
    ],
)
def test_tokens_meant_for_someone_else_are_refused(client: Client, subject: dict[str, Any]) -> None:
    with pytest.raises(OAuthError) as caught:
        exchange.check_subject(subject, client)
    assert caught.value.error == "invalid_grant"
    assert caught.value.description == "the subject token was not issued for this client"


def test_delegated_tokens_need_an_explicit_permission() -> None:
    """RFC 8693 §4.1: a token naming an actor is an internal one."""
    internal = claims(client_id="gateway", act={"sub": "mobile"})
    with pytest.raises(OAuthError, match="may not chain"):
        exchange.check_subject(internal, GATEWAY)
    chaining = replace(GATEWAY, exchange_delegation_chains=True)
    exchange.check_subject(internal, chaining)
    with pytest.raises(OAuthError, match="not issued for this client"):
        exchange.check_subject(claims(aud="https://x.example", act={"sub": "m"}), chaining)


@pytest.mark.parametrize(("exp", "expected"), [(NOW + 500, 60.0), (NOW + 30, 30.0), (NOW + 1, 1.0)])
def test_the_lifetime_never_outlives_the_subject(exp: float, expected: float) -> None:
    assert exchange.lifetime(exp, NOW) == expected


@pytest.mark.parametrize("exp", [NOW + 0.999, NOW, NOW - 29])
def test_a_subject_about_to_expire_is_refused(exp: float) -> None:
    """Verification forgives 30 s of skew past exp; no lifetime may come from that."""
    with pytest.raises(OAuthError) as caught:
        exchange.lifetime(exp, NOW)
    assert caught.value.error == "invalid_grant"
