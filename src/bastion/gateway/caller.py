"""Who is calling, once a token is verified: the pure part of authentication (no JOSE,
no I/O), so that policies and bindings depend on it alone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.errors import BEARER_REALM, Unauthenticated
from bastion.oauth.dpop import access_token_hash
from bastion.oauth.dpop import bound_key as token_key

BASTION = "bastion"
REALM = BEARER_REALM
MAX_TOKEN_BYTES = 8192


@dataclass(frozen=True)
class Caller:
    """A verified token's holder. ``issuer`` is "bastion" or an external issuer's name."""

    issuer: str
    subject: str
    client_id: str | None
    scopes: frozenset[str]
    claims: Mapping[str, Any]
    expires_at: float
    jti: str | None
    # Values derived from the token, computed once per cached token (hot path).
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


def presented_token(authorization: str | None) -> tuple[str, str]:
    """The scheme ("bearer" or "dpop") and token of an ``Authorization`` header (RFC 6750
    §2.1, RFC 9449 §7.1), or Unauthenticated."""
    if not authorization:
        raise Unauthenticated("An access token is required.", error=None)
    scheme, _, token = authorization.partition(" ")
    scheme, token = scheme.lower(), token.strip()
    if (
        scheme not in ("bearer", "dpop")
        or not token
        or " " in token
        or len(token) > MAX_TOKEN_BYTES
    ):
        raise Unauthenticated("The access token is invalid.", error="invalid_request")
    return scheme, token


def bound_key(caller: Caller) -> str | None:
    """The RFC 7638 thumbprint the caller's token is bound to (``cnf.jkt``, RFC 9449
    §6.1), or None for a bearer token; remembered with the cached token."""
    if "jkt" not in caller.memo:
        caller.memo["jkt"] = token_key(caller.claims)
    value: str | None = caller.memo["jkt"]
    return value


def token_hash(caller: Caller, token: str) -> str:
    """The token's ``ath`` (RFC 9449 §4.2), remembered with the cached token: every DPoP
    proof presented with it names it. The cache holds a caller per token (by digest),
    so ``token`` is always the one this caller was verified from."""
    value: str | None = caller.memo.get("ath")
    if value is None:
        value = caller.memo["ath"] = access_token_hash(token)
    return value


def claim_text(caller: Caller, claim: str) -> str | None:
    """A claim as text for comparisons with ids: a non-empty string or an integer only."""
    value = caller.claims.get(claim)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value) or None


def principal(caller: Caller, value: str) -> str:
    """``value`` (a subject or other owner claim) in its issuer's namespace.

    Bastion's own subjects stand as they are; another issuer's are prefixed with its
    name, so a partner's "u1" is never Bastion's user "u1" (in the ownership registry
    and in internal tokens).
    """
    return value if caller.issuer == BASTION else f"{caller.issuer}|{value}"
