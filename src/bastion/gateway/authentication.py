"""Who is calling: an access token from Bastion or from a declared external issuer.

The signature and claims of a token are checked once; the result is cached under the
token's SHA-256 until it expires, so a busy app pays for one signature check per token,
not per request. Revocation still wins: every request of a Bastion token consults the
denylist that revocation, sign-out and user disabling write (``AccessTokens.deny``).

Every failure is the same opaque ``invalid_token`` (RFC 6750 §3.1); the reason goes to
the log through the exception chain only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from joserfc.errors import JoseError

from bastion.caches import TTLCache
from bastion.clock import Clock
from bastion.crypto import jws
from bastion.crypto.jws import PublicKeys
from bastion.errors import OAuthError, Unauthenticated
from bastion.gateway.caller import BASTION, Caller
from bastion.gateway.jwks import JwksCache
from bastion.gateway.settings import IssuerSettings
from bastion.oauth.tokens import MAX_CLOCK_SKEW, claims_registry, verify_parsed_access_token


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
        self._cache: TTLCache[bytes, Caller] = TTLCache(clock, cache_size)
        self._parsed: tuple[tuple[str, ...], PublicKeys] | None = None

    async def authenticate(self, token: str, accepted: tuple[str, ...]) -> Caller:
        now = self._clock.now()
        digest = hashlib.sha256(token.encode()).digest()
        caller = self._cache.get(digest)
        if caller is None:
            caller = await self._verify(token, now)
            # Kept while it verifies: until exp and the clock skew forgiven past it.
            self._cache.set(digest, caller, caller.expires_at + MAX_CLOCK_SKEW)
        if caller.issuer not in accepted:
            raise Unauthenticated("The access token is invalid.")
        if caller.issuer == BASTION and caller.jti and await self._is_revoked(caller.jti):
            raise Unauthenticated("The access token is invalid.")
        return caller

    async def _verify(self, token: str, now: float) -> Caller:
        # Taken apart once: the issuer and kid that choose the keys, then the signature
        # and the claims, all read from this one parse.
        try:
            compact = jws.parse_compact(token)
        except ValueError as exc:
            raise Unauthenticated("The access token is invalid.") from exc
        claimed = compact.claims.get("iss")
        if claimed == self._issuer:
            await self._refresh_keys()
            try:
                claims = verify_parsed_access_token(
                    compact,
                    self._bastion_public_keys(),
                    issuer=self._issuer,
                    now=now,
                    audience=self._audience,
                )
            except (OAuthError, ValueError) as exc:
                raise Unauthenticated("The access token is invalid.") from exc
            return _caller(BASTION, claims, claims.get("client_id"))
        if isinstance(claimed, str) and claimed in self._external:
            settings, keys = self._external[claimed]
            claims = await _verify_external(compact, settings, keys, now)
            client = claims.get(settings.client_id_claim) or claims.get("azp")
            return _caller(settings.name, claims, client)
        raise Unauthenticated("The access token is invalid.") from ValueError("unknown issuer")

    def _bastion_public_keys(self) -> PublicKeys:
        """Bastion's published keys, parsed once per key set: a kid is the RFC 7638
        thumbprint of its public key, so the kids name the set."""
        jwks = self._bastion_keys()
        kids = tuple(str(key.get("kid")) for key in jwks.get("keys", ()))
        if self._parsed is None or self._parsed[0] != kids:
            self._parsed = (kids, PublicKeys.from_jwks(jwks))
        return self._parsed[1]


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


async def _verify_external(
    compact: jws.Compact, settings: IssuerSettings, keys: JwksCache, now: float
) -> dict[str, Any]:
    kid = compact.header.get("kid")
    public = await keys.public_keys(kid if isinstance(kid, str) else None)
    try:
        jws.verify(compact, public, settings.algorithms)
    except ValueError as exc:
        raise Unauthenticated("The access token is invalid.") from exc
    problem = external_claims_problem(compact.header, compact.claims, settings, now)
    if problem is not None:
        raise Unauthenticated("The access token is invalid.") from ValueError(problem)
    return dict(compact.claims)


def external_claims_problem(
    header: Mapping[str, Any], claims: Mapping[str, Any], settings: IssuerSettings, now: float
) -> str | None:
    """RFC 9068 §4 and RFC 7519 §4.1 checks, with the issuer's accepted ``typ`` values."""
    typ = str(header.get("typ", ""))
    if typ.lower() not in {t.lower() for t in settings.token_types}:
        return "typ not accepted"
    cnf = claims.get("cnf")
    if cnf is not None and not (isinstance(cnf, dict) and isinstance(cnf.get("jkt"), str)):
        # A constraint other than DPoP (RFC 8705 mTLS's x5t#S256, say) cannot be checked
        # here, and accepting the token without it would strip the constraint. A DPoP
        # binding (cnf.jkt) is checked on every request by the dpop step.
        return "sender constraint other than DPoP"
    registry = claims_registry(
        issuer=settings.issuer, now=now, audiences=settings.audience, required=("exp", "sub")
    )
    try:
        registry.validate(dict(claims))
    except JoseError as exc:
        return f"{exc.error}: {exc.description}"
    if not isinstance(claims.get("sub"), str):
        return "no sub"
    return None
