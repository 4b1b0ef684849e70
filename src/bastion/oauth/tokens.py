"""Access tokens (RFC 9068 JWT profile) and ID tokens (OpenID Connect Core §2).

Access tokens carry ``typ: at+jwt`` and are verified only with that type, so an ID token
(``typ: JWT``) or any other JWT signed by the same keys cannot be used as one (RFC 9068
§4, RFC 8725 §3.11). Algorithms come from an allowlist; ``none`` and HMAC never verify.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from bastion.crypto import jws
from bastion.crypto.jws import PublicKeys
from bastion.errors import OAuthError

ACCESS_TOKEN_TYP = "at+jwt"
ID_TOKEN_TYP = "JWT"
SIGNING_ALGORITHMS = ("ES256", "Ed25519")
MAX_CLOCK_SKEW = 30.0
MIN_LIFETIME = 1.0


def new_jti() -> str:
    return secrets.token_urlsafe(16)


def access_token_claims(
    *,
    issuer: str,
    subject: str,
    client_id: str,
    scope: Sequence[str],
    audience: Sequence[str],
    now: float,
    lifetime: float,
    auth_time: float | None = None,
    acr: str | None = None,
    amr: Sequence[str] = (),
    act: Mapping[str, Any] | None = None,
    jti: str | None = None,
    jkt: str | None = None,
) -> dict[str, Any]:
    """RFC 9068 §2.2 claims; ``jkt``, the thumbprint of a DPoP key, binds the token to
    that key (RFC 9449 §6.1: ``cnf.jkt``)."""
    if lifetime < MIN_LIFETIME:
        # A caller computing a lifetime must refuse before it gets here; zero in
        # particular is a lifetime, never "use the default".
        raise ValueError("an access token must live at least one second")
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": list(audience) if len(audience) != 1 else audience[0],
        "client_id": client_id,
        "scope": " ".join(scope),
        "jti": jti or new_jti(),
        "iat": int(now),
        "exp": int(now + lifetime),
    }
    if auth_time is not None:
        claims["auth_time"] = int(auth_time)
    if acr:
        claims["acr"] = acr
    if amr:
        claims["amr"] = list(amr)
    if act:
        claims["act"] = dict(act)
    if jkt is not None:
        claims["cnf"] = {"jkt": jkt}
    return claims


def id_token_claims(
    *,
    issuer: str,
    subject: str,
    client_id: str,
    now: float,
    lifetime: float,
    auth_time: float,
    nonce: str | None,
    acr: str | None,
    amr: Sequence[str],
) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": client_id,
        "azp": client_id,
        "iat": int(now),
        "exp": int(now + lifetime),
        "auth_time": int(auth_time),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if acr:
        claims["acr"] = acr
    if amr:
        claims["amr"] = list(amr)
    return claims


def verify_access_token(
    token: str,
    keys: Mapping[str, Any] | PublicKeys,
    *,
    issuer: str,
    now: float,
    audience: str | None = None,
) -> dict[str, Any]:
    """Claims of a valid access token, or ``OAuthError("invalid_token")``.

    One opaque failure for every reason, so a caller cannot be used as an oracle; the
    reason is kept in ``__cause__`` for the log. ``keys`` is a JWKS document, or the
    same keys parsed once (``PublicKeys``, e.g. ``SigningKeys.key_set``) by a caller
    that checks many tokens.
    """
    try:
        compact = jws.parse_compact(token)
    except ValueError as exc:
        raise OAuthError("invalid_token", "the access token is invalid", status=401) from exc
    return verify_parsed_access_token(compact, keys, issuer=issuer, now=now, audience=audience)


def verify_parsed_access_token(
    compact: jws.Compact,
    keys: Mapping[str, Any] | PublicKeys,
    *,
    issuer: str,
    now: float,
    audience: str | None = None,
) -> dict[str, Any]:
    """``verify_access_token`` for a token already taken apart (``jws.parse_compact``)."""
    header, claims = verify_signature(compact, keys)
    check_access_claims(header, claims, issuer=issuer, now=now, audience=audience)
    return claims


def verify_signature(
    token: str | jws.Compact, keys: Mapping[str, Any] | PublicKeys
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS signed by one of ``keys`` with an allowed
    algorithm; nothing about the claims is checked yet (``check_access_claims``)."""
    try:
        compact = jws.parse_compact(token) if isinstance(token, str) else token
        public = keys if isinstance(keys, PublicKeys) else PublicKeys.from_jwks(keys)
        jws.verify(compact, public, SIGNING_ALGORITHMS)
    except ValueError as exc:
        raise OAuthError("invalid_token", "the access token is invalid", status=401) from exc
    return dict(compact.header), dict(compact.claims)


def check_access_claims(
    header: Mapping[str, Any],
    claims: Mapping[str, Any],
    *,
    issuer: str,
    now: float,
    audience: str | None = None,
) -> None:
    """``typ`` and the RFC 9068 claims at ``now``; ``OAuthError("invalid_token")``."""
    problem = _claims_problem(header, claims, issuer=issuer, now=now, audience=audience)
    if problem is not None:
        raise OAuthError("invalid_token", "the access token is invalid", status=401) from (
            ValueError(problem)
        )


def verify_id_token_hint(
    token: str, keys: Mapping[str, Any], *, issuer: str
) -> dict[str, Any] | None:
    """Claims of an ID token this issuer signed, or None.

    OpenID Connect RP-Initiated Logout 1.0 §2: the hint may have expired (the user's
    session often outlives it), so only the signature, ``typ``, ``iss``, ``sub`` and
    ``aud`` are checked.
    """
    try:
        key_set = KeySet.import_key_set(dict(keys))  # type: ignore[arg-type]
        decoded = jwt.decode(token, key_set, algorithms=list(SIGNING_ALGORITHMS))
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    claims = dict(decoded.claims)
    if str(decoded.header.get("typ", "")).lower() != ID_TOKEN_TYP.lower():
        return None
    if claims.get("iss") != issuer or not isinstance(claims.get("sub"), str):
        return None
    if not isinstance(claims.get("aud"), str | list):
        return None
    return claims


def claims_registry(
    *,
    issuer: str,
    now: float,
    audiences: Sequence[str] | None = None,
    required: Sequence[str] = ("exp", "iat"),
) -> jwt.JWTClaimsRegistry:
    """joserfc's RFC 7519 §4.1 checks, at ``now``, with the clock skew forgiven: ``iss``,
    ``exp``, ``nbf``, ``iat`` and, when given, ``aud`` (any one of ``audiences``)."""
    options: dict[str, jwt.ClaimsOption] = {name: {"essential": True} for name in required}
    options["iss"] = {"essential": True, "value": issuer}
    if audiences is not None:
        options["aud"] = {"essential": True, "values": list(audiences)}
    # NumericDates are whole seconds; so is the registry's "now".
    return jwt.JWTClaimsRegistry(now=int(now), leeway=int(MAX_CLOCK_SKEW), **options)


def _claims_problem(
    header: Mapping[str, Any],
    claims: Mapping[str, Any],
    *,
    issuer: str,
    now: float,
    audience: str | None,
) -> str | None:
    """What is wrong with an access token's ``typ`` and claims at ``now``, or None.

    The rules of joserfc's ``JWTClaimsRegistry`` as ``claims_registry`` sets it up
    (``exp``, ``iat``, ``sub``, ``client_id``, ``jti``, ``iss`` and, when given, ``aud``
    required; RFC 7519 §4.1), written out: this runs on every introspection, and building
    and walking the registry cost more than the checks. A test holds the two to the same
    answers.
    """
    typ = str(header.get("typ", "")).lower()
    if typ not in (ACCESS_TOKEN_TYP, f"application/{ACCESS_TOKEN_TYP}"):
        return "wrong typ: not an access token"
    required = _REQUIRED if audience is None else _REQUIRED_WITH_AUD
    missing = [name for name in required if claims.get(name) is None]
    if missing:
        return f"missing_claim: {','.join(sorted(missing))}"
    for name in ("sub", "client_id", "jti"):
        if not isinstance(claims[name], str) or not claims[name]:
            return f"missing {name}"
    if claims["iss"] != issuer or not isinstance(claims["iss"], str):
        return "invalid_claim: iss"
    if "aud" in claims:
        aud = claims["aud"]
        if not isinstance(aud, str) and not (
            isinstance(aud, list) and all(isinstance(value, str) for value in aud)
        ):
            return "invalid_claim: aud is not a StringOrURI or a list of them"
        if audience is not None and (
            audience not in aud if isinstance(aud, list) else aud != audience
        ):
            return "invalid_claim: aud"
    # NumericDates are whole seconds; so is "now" (as joserfc's registry takes it).
    whole_now = int(now)
    leeway = int(MAX_CLOCK_SKEW)
    exp = claims["exp"]
    if not _numeric_date(exp):
        return "invalid_claim: exp is not a NumericDate"
    if exp <= whole_now - leeway:
        return "expired_token: exp"
    for name in ("iat", "nbf"):
        if name in claims:
            value = claims[name]
            if not _numeric_date(value):
                return f"invalid_claim: {name} is not a NumericDate"
            if value > whole_now + leeway:
                return f"invalid_claim: {name} is in the future"
    return None


_REQUIRED = ("exp", "iat", "sub", "client_id", "jti", "iss")
_REQUIRED_WITH_AUD = (*_REQUIRED, "aud")


def _numeric_date(value: object) -> bool:
    """RFC 7519 §2: a JSON number; not a boolean, NaN or an infinity (never expiring)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
