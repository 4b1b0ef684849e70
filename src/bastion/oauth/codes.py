"""Authorization codes: short-lived, single-use, bound to client, redirect URI and PKCE.

RFC 6749 §4.1.2 (short lifetime, single use), §4.1.3 (client and redirect_uri binding),
RFC 7636 §4.6 (PKCE), RFC 9700 §4.5 (code injection). Only the code's hash is stored;
single use itself is enforced by the store with one atomic "consume" step.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from bastion.errors import OAuthError
from bastion.oauth import pkce

# The default of ``oauth.code_lifetime``; the minting side passes the configured value.
CODE_LIFETIME = 60.0
CODE_BYTES = 32


def new_code() -> str:
    return secrets.token_urlsafe(CODE_BYTES)


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


@dataclass(frozen=True)
class CodeGrant:
    """What a code stands for; stored under ``code_hash`` until redeemed or expired."""

    code_hash: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    scope: tuple[str, ...]
    resources: tuple[str, ...]
    subject: str
    session_id: str
    auth_time: float
    acr: str
    amr: tuple[str, ...]
    nonce: str | None
    issued_at: float
    expires_at: float
    consumed_at: float | None = None
    # RFC 6749 §4.1.3: redirect_uri is required at the token endpoint only if the
    # authorization request included it.
    redirect_uri_given: bool = True
    # RFC 9449 §10: the thumbprint of the DPoP key the authorization request named.
    dpop_jkt: str | None = None


def check_redemption(
    grant: CodeGrant,
    *,
    client_id: str,
    redirect_uri: str | None,
    verifier: str | None,
    now: float,
) -> None:
    """Every binding must hold; each failure is the same ``invalid_grant`` to the client."""
    if now >= grant.expires_at:
        raise OAuthError("invalid_grant", "the authorization code has expired")
    if not _same(grant.client_id, client_id):
        # RFC 6749 §4.1.3: a code issued to another client (code injection).
        raise OAuthError("invalid_grant", "the authorization code was issued to another client")
    if (grant.redirect_uri_given or redirect_uri is not None) and (
        redirect_uri is None or not _same(grant.redirect_uri, redirect_uri)
    ):
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
    pkce.verify(verifier, grant.code_challenge)


def _same(a: str, b: str) -> bool:
    """Constant-time equality for any text (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )
