"""PKCE (RFC 7636) with S256 only, as OAuth 2.1 and RFC 9700 §2.1.1 require of native apps."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from bastion.errors import OAuthError

# RFC 7636 §4.1: code_verifier = 43*128unreserved (ALPHA / DIGIT / "-" / "." / "_" / "~")
VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# The S256 challenge is BASE64URL(SHA256(verifier)) without padding: always 43 characters.
CHALLENGE = re.compile(r"[A-Za-z0-9_\-]{43}")


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def check_challenge(challenge: str | None, method: str | None) -> str:
    """Validate the authorization request's PKCE parameters; return the challenge.

    A missing challenge and the ``plain`` method are refused for every client: ``plain``
    offers no protection when the request itself can be observed (RFC 7636 §7.2).
    """
    if not challenge:
        raise OAuthError("invalid_request", "code_challenge is required (PKCE, RFC 7636)")
    if method != "S256":
        raise OAuthError("invalid_request", "code_challenge_method must be S256")
    if not CHALLENGE.fullmatch(challenge):
        raise OAuthError("invalid_request", "code_challenge is not a valid S256 challenge")
    return challenge


def verify(verifier: str | None, challenge: str) -> None:
    """Check the token request's verifier against the stored challenge (RFC 7636 §4.6)."""
    if not verifier or not VERIFIER.fullmatch(verifier):
        raise OAuthError("invalid_grant", "code_verifier is missing or malformed")
    if not hmac.compare_digest(s256(verifier), challenge):
        raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
