"""Authorization code redemption: every binding (RFC 6749 §4.1.3, RFC 7636 §4.6, RFC 9700 §4.5)."""

from __future__ import annotations

import pytest

from bastion.errors import OAuthError
from bastion.oauth import pkce
from bastion.oauth.codes import CODE_LIFETIME, CodeGrant, check_redemption, code_hash, new_code

VERIFIER = "v" * 50
NOW = 1_700_000_000.0
GRANT = CodeGrant(
    code_hash=code_hash("c"),
    client_id="app",
    redirect_uri="com.example.app:/cb",
    code_challenge=pkce.s256(VERIFIER),
    scope=("openid",),
    resources=(),
    subject="u1",
    session_id="s1",
    auth_time=NOW - 5,
    acr="urn:bastion:acr:password",
    amr=("pwd",),
    nonce=None,
    issued_at=NOW,
    expires_at=NOW + CODE_LIFETIME,
)


def redeem(**overrides: object) -> None:
    args: dict[str, object] = {
        "client_id": "app",
        "redirect_uri": "com.example.app:/cb",
        "verifier": VERIFIER,
        "now": NOW + 1,
    }
    args.update(overrides)
    check_redemption(GRANT, **args)  # type: ignore[arg-type]


def test_codes_are_random_and_stored_hashed() -> None:
    code = new_code()
    assert len(code) >= 43
    assert code_hash(code) != code
    assert new_code() != code


def test_good_redemption() -> None:
    redeem()


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "other-app"},  # code injection across clients
        {"redirect_uri": "com.example.app:/other"},  # across redirect URIs
        {"redirect_uri": None},
        {"verifier": "w" * 50},  # PKCE mismatch
        {"verifier": None},  # PKCE downgrade at the token side
        {"verifier": pkce.s256(VERIFIER)},  # "plain" with the challenge
        {"now": NOW + CODE_LIFETIME},  # expired at 60 s
    ],
)
def test_every_binding_is_enforced(overrides: dict[str, object]) -> None:
    with pytest.raises(OAuthError) as caught:
        redeem(**overrides)
    assert caught.value.error == "invalid_grant"
