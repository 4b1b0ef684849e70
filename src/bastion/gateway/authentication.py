"""Who is calling: a bearer access token from Bastion or from a declared external issuer.

The signature and claims of a token are checked once; the result is cached under the
token's SHA-256 until it expires, so a busy app pays for one signature check per token,
not per request. Revocation still wins: every request of a Bastion token consults the
denylist that revocation, sign-out and user disabling write (``AccessTokens.deny``).

Every failure is the same opaque ``invalid_token`` (RFC 6750 §3.1); the reason goes to
the log through the exception chain only.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from joserfc import jwt
from joserfc.errors import JoseError

from bastion.clock import Clock
from bastion.errors import OAuthError, ProblemError
from bastion.gateway.jwks import JwksCache
from bastion.gateway.settings import BASTION, IssuerSettings
from bastion.oauth.tokens import MAX_CLOCK_SKEW, verify_access_token

REALM = 'Bearer realm="bastion"'
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


class Unauthenticated(ProblemError):
    status = 401
    title = "Unauthorized"
    type = "urn:bastion:problem:unauthenticated"

    def __init__(self, detail: str, error: str | None = "invalid_token") -> None:
        challenge = REALM if error is None else f'{REALM}, error="{error}"'
        super().__init__(detail, headers={"www-authenticate": challenge})


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 §2.1), or Unauthenticated."""
    if not authorization:
        raise Unauthenticated("An access token is required.", error=None)
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token or len(token) > MAX_TOKEN_BYTES:
        raise Unauthenticated("The access token is invalid.", error="invalid_request")
    return token


class Authenticator:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        bastion_keys: Callable[[], Mapping[str, Any]],
        refresh_keys: Callable[[], Awaitable[None]],
        is_revoked: Callable[[str], Awaitable[bool]],
        external: Sequence[tuple[IssuerSettings, JwksCache]],
        clock: Clock,
        cache_size: int,
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        self._bastion_keys = bastion_keys
        self._refresh_keys = refresh_keys
        self._is_revoked = is_revoked
        self._external = {settings.issuer: (settings, cache) for settings, cache in external}
        self._clock = clock
        self._cache: OrderedDict[bytes, Caller] = OrderedDict()
        self._cache_size = cache_size

    async def authenticate(self, token: str, accepted: tuple[str, ...]) -> Caller:
        now = self._clock.now()
        digest = hashlib.sha256(token.encode()).digest()
        caller = self._cache.get(digest)
        if caller is None or now >= caller.expires_at + MAX_CLOCK_SKEW:
            caller = await self._verify(token, now)
            self._remember(digest, caller)
        if caller.issuer not in accepted:
            raise Unauthenticated("The access token is invalid.")
        if caller.issuer == BASTION and caller.jti and await self._is_revoked(caller.jti):
            raise Unauthenticated("The access token is invalid.")
        return caller

    def _remember(self, digest: bytes, caller: Caller) -> None:
        if self._cache_size == 0:
            return
        self._cache[digest] = caller
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _verify(self, token: str, now: float) -> Caller:
        claimed = _unverified_issuer(token)
        if claimed == self._issuer:
            await self._refresh_keys()
            try:
                claims = verify_access_token(
                    token,
                    self._bastion_keys(),
                    issuer=self._issuer,
                    now=now,
                    audience=self._audience,
                )
            except OAuthError as exc:
                raise Unauthenticated("The access token is invalid.") from exc
            return _caller(BASTION, claims, claims.get("client_id"))
        if claimed in self._external:
            settings, keys = self._external[claimed]
            claims = await _verify_external(token, settings, keys, now)
            client = claims.get(settings.client_id_claim) or claims.get("azp")
            return _caller(settings.name, claims, client)
        raise Unauthenticated("The access token is invalid.") from ValueError("unknown issuer")


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


def _caller(issuer: str, claims: Mapping[str, Any], client_id: object) -> Caller:
    scope = claims.get("scope")
    scopes: Any = scope.split() if isinstance(scope, str) else claims.get("scp")
    if isinstance(scopes, str):
        scopes = scopes.split()
    if not isinstance(scopes, list | tuple):
        scopes = ()
    jti = claims.get("jti")
    return Caller(
        issuer=issuer,
        subject=str(claims["sub"]),
        client_id=client_id if isinstance(client_id, str) else None,
        scopes=frozenset(s for s in scopes or () if isinstance(s, str)),
        claims=claims,
        expires_at=float(claims["exp"]),
        jti=jti if isinstance(jti, str) else None,
    )


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    if not isinstance(decoded, dict):
        raise ValueError("not a JSON object")
    return decoded


def _unverified_issuer(token: str) -> str | None:
    """Only to choose which keys verify the token; the verified ``iss`` is checked after."""
    try:
        if token.count(".") != 2:
            return None
        issuer = _segment(token, 1).get("iss")
    except (ValueError, orjson.JSONDecodeError):
        return None
    return issuer if isinstance(issuer, str) else None


async def _verify_external(
    token: str, settings: IssuerSettings, keys: JwksCache, now: float
) -> dict[str, Any]:
    try:
        header = _segment(token, 0)
        kid = header.get("kid")
        key_set = await keys.key_set(kid if isinstance(kid, str) else None)
        decoded = jwt.decode(token, key_set, algorithms=list(settings.algorithms))
    except (JoseError, ValueError, TypeError, KeyError, orjson.JSONDecodeError) as exc:
        raise Unauthenticated("The access token is invalid.") from exc
    problem = external_claims_problem(decoded.header, decoded.claims, settings, now)
    if problem is not None:
        raise Unauthenticated("The access token is invalid.") from ValueError(problem)
    return dict(decoded.claims)


def external_claims_problem(
    header: Mapping[str, Any], claims: Mapping[str, Any], settings: IssuerSettings, now: float
) -> str | None:
    """RFC 9068 §4 and RFC 7519 §4.1 checks, with the issuer's accepted ``typ`` values."""
    typ = str(header.get("typ", ""))
    if typ.lower() not in {t.lower() for t in settings.token_types}:
        return "typ not accepted"
    if claims.get("iss") != settings.issuer:
        return "wrong issuer"
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if not {a for a in audiences if isinstance(a, str)} & set(settings.audience):
        return "wrong audience"
    if "cnf" in claims:
        # A sender-constrained token (RFC 9449 DPoP, RFC 8705 mTLS) is not a bearer token:
        # accepting it without the proof would strip the constraint.
        return "sender-constrained token presented as bearer"
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or now >= exp + MAX_CLOCK_SKEW:
        return "expired or no exp"
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if value is not None and (not _number(value) or float(value) > now + MAX_CLOCK_SKEW):
            return f"{name} in the future"
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        return "no sub"
    return None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
