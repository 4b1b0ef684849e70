"""Tokens as the demo page shows them: claims decoded but not verified, times readable,
and each token named by a short fingerprint rather than by its value.

The app received its tokens straight from the token endpoint, so reading them without
checking a signature is what OIDC Core §3.1.3.7 allows a client for an ID token it got
that way. The page still says "decoded, not verified": a resource server must never
treat a token like this (the gateway verifies every one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from joserfc import jws
from joserfc.errors import JoseError

# Claims whose value is a time (RFC 7519 §4.1, OIDC Core §2).
TIMES = frozenset({"exp", "iat", "nbf", "auth_time"})
MEANINGS = {
    "iss": "issuer: who signed it",
    "sub": "subject: the user, as an opaque id",
    "aud": "audience: who may accept it",
    "azp": "authorized party: the app",
    "client_id": "the app it was issued to",
    "scope": "what it allows",
    "exp": "expires",
    "iat": "issued",
    "nbf": "not valid before",
    "auth_time": "when the user signed in",
    "acr": "how strongly the user signed in",
    "amr": "how the user signed in",
    "jti": "token id, for revocation",
    "cnf": "the key the token is bound to: only its holder may use it",
}


def fingerprint(token: str) -> str:
    """The first 8 hex digits of the token's SHA-256: tells tokens apart, reveals none."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


def decoded(token: str) -> dict[str, Any] | None:
    """The payload of a compact JWS, unverified; None for anything else (an opaque
    token)."""
    try:
        payload = orjson.loads(jws.extract_compact(token.encode()).payload)
    except (JoseError, ValueError, orjson.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def utc(moment: float) -> str:
    """``2025-06-01 12:00:05 UTC``: the page's script rewrites it in the reader's zone."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Claim:
    """One claim as shown: its name, its value in words, what it means, and for times
    the moment (seconds since the epoch) the page's script counts towards."""

    name: str
    value: str
    meaning: str
    moment: float | None = None


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value)
    return orjson.dumps(value).decode()


def claims(payload: Mapping[str, Any]) -> list[Claim]:
    """Every claim of ``payload``, in the token's order."""
    shown = []
    for name, value in payload.items():
        meaning = MEANINGS.get(name, "")
        if name in TIMES and isinstance(value, int | float) and not isinstance(value, bool):
            shown.append(Claim(name, utc(value), meaning, float(value)))
        else:
            shown.append(Claim(name, _shown(value), meaning))
    return shown
