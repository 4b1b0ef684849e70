"""PKCE, S256 only (RFC 7636; OAuth 2.1 §4.1.1; RFC 9700 §2.1.1)."""

from __future__ import annotations

import pytest

from bastion.errors import OAuthError
from bastion.oauth import pkce

# RFC 7636 Appendix B test vector.
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_rfc7636_appendix_b_vector() -> None:
    assert pkce.s256(VERIFIER) == CHALLENGE
    pkce.verify(VERIFIER, CHALLENGE)


def test_challenge_is_required() -> None:
    """RFC 9700 §2.1.1: PKCE for every client; a missing challenge is a downgrade."""
    with pytest.raises(OAuthError) as caught:
        pkce.check_challenge(None, None)
    assert caught.value.error == "invalid_request"


@pytest.mark.parametrize("method", ["plain", None, "s256", "S512", ""])
def test_only_s256_is_accepted(method: str | None) -> None:
    """RFC 7636 §7.2: plain protects nothing when the request can be observed."""
    with pytest.raises(OAuthError):
        pkce.check_challenge(CHALLENGE, method)


@pytest.mark.parametrize(
    "challenge",
    ["short", CHALLENGE + "A", CHALLENGE[:-1] + "=", CHALLENGE[:-1] + "+", VERIFIER + "x" * 10],
)
def test_malformed_challenges(challenge: str) -> None:
    with pytest.raises(OAuthError):
        pkce.check_challenge(challenge, "S256")


@pytest.mark.parametrize(
    "verifier", [None, "", "a" * 42, "a" * 129, "a" * 42 + " ", "ä" * 43, VERIFIER[:-1] + "+"]
)
def test_verifier_syntax(verifier: str | None) -> None:
    """RFC 7636 §4.1: 43 to 128 unreserved characters."""
    with pytest.raises(OAuthError) as caught:
        pkce.verify(verifier, CHALLENGE)
    assert caught.value.error == "invalid_grant"


def test_wrong_verifier_is_invalid_grant() -> None:
    """RFC 7636 §4.6: the verifier must hash to the stored challenge."""
    with pytest.raises(OAuthError) as caught:
        pkce.verify("x" * 43, CHALLENGE)
    assert caught.value.error == "invalid_grant"


def test_the_challenge_itself_is_not_a_verifier() -> None:
    """Downgrade to plain from the token side: sending the challenge must not pass."""
    with pytest.raises(OAuthError):
        pkce.verify(CHALLENGE, CHALLENGE)
