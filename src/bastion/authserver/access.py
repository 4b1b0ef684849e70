"""Access tokens as a service: mint (and index), verify (with revocation), revoke.

Revocation of a JWT access token is a denylist entry for its ``jti`` in hot state, kept
until the token's ``exp``; verification consults it after the signature, and also
refuses tokens issued before the user's "revoke everything" moment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bastion.accounts.stores import UserStore
from bastion.audit import AuditEvent, AuditPipeline, Outcome
from bastion.authserver.stores import GrantStore
from bastion.caches import TTLCache
from bastion.clock import Clock
from bastion.config import Settings
from bastion.crypto.jws import PublicKeys
from bastion.crypto.signing import SigningKeys
from bastion.errors import OAuthError
from bastion.oauth.tokens import (
    ACCESS_TOKEN_TYP,
    MAX_CLOCK_SKEW,
    access_token_claims,
    check_access_claims,
    verify_signature,
)
from bastion.store.protocols import HotStore

DENYLIST_PREFIX = "revoked-jti:"
# The key set that verified a token, with its header and claims.
Verified = tuple[PublicKeys, dict[str, Any], dict[str, Any]]
# Signatures checked, per process: introspection of the same token again skips the
# ECDSA verification, which costs more than the rest of the request.
VERIFIED_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Authentication:
    """How the user authenticated, carried from the login into every token."""

    subject: str
    auth_time: float | None = None
    acr: str | None = None
    amr: tuple[str, ...] = ()


class AccessTokens:
    def __init__(
        self,
        settings: Settings,
        keys: SigningKeys,
        grants: GrantStore,
        users: UserStore,
        hot: HotStore,
        audit: AuditPipeline,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.grants = grants
        self.users = users
        self.hot = hot
        self.audit = audit
        self.clock = clock
        self._verified: TTLCache[bytes, tuple[PublicKeys, dict[str, Any], dict[str, Any]]] = (
            TTLCache(clock, VERIFIED_CACHE_SIZE)
        )

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    def default_audience(self) -> tuple[str, ...]:
        return (self.settings.oauth.default_audience or self.settings.issuer,)

    def claims(
        self,
        *,
        client_id: str,
        who: Authentication,
        scope: Sequence[str],
        audience: Sequence[str],
        lifetime: float | None = None,
        act: dict[str, Any] | None = None,
        jkt: str | None = None,
    ) -> dict[str, Any]:
        """The claims of a new access token (its ``jti`` fresh): not yet indexed; bound to
        a DPoP key when ``jkt`` is given."""
        return access_token_claims(
            issuer=self.issuer,
            subject=who.subject,
            client_id=client_id,
            scope=scope,
            audience=audience or self.default_audience(),
            now=self.clock.now(),
            lifetime=self.settings.oauth.access_token_lifetime if lifetime is None else lifetime,
            auth_time=who.auth_time,
            acr=who.acr,
            amr=who.amr,
            act=act,
            jkt=jkt,
        )

    def sign(self, claims: dict[str, Any]) -> str:
        """The signed token; only once its entry in the index is committed."""
        return self.keys.sign_jwt(claims, typ=ACCESS_TOKEN_TYP)

    async def mint(
        self,
        *,
        client_id: str,
        who: Authentication,
        scope: Sequence[str],
        audience: Sequence[str],
        lifetime: float | None = None,
        family_id: str | None = None,
        code_hash: str | None = None,
        act: dict[str, Any] | None = None,
        jkt: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        claims = self.claims(
            client_id=client_id,
            who=who,
            scope=scope,
            audience=audience,
            lifetime=lifetime,
            act=act,
            jkt=jkt,
        )
        # Indexed before it is handed out, so any revocation that follows can find it.
        await self.grants.record_token(
            claims["jti"],
            client_id=client_id,
            subject=who.subject,
            expires_at=claims["exp"],
            family_id=family_id,
            code_hash=code_hash,
        )
        return self.sign(claims), claims

    async def verify(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """Signature, type, claims, denylist and user revocation; one opaque failure."""
        await self.keys.refresh_if_stale()
        claims = self._verified_claims(token, audience)
        if await self.hot.get(DENYLIST_PREFIX + claims["jti"]) is not None:
            raise OAuthError("invalid_token", "the access token is invalid", status=401)
        user = await self.users.token_state(claims["sub"])
        # iat has whole seconds; tokens from earlier in the revocation's own second are
        # caught by the denylist entry the revocation wrote for each of them.
        if user is not None and (not user[0] or claims["iat"] < int(user[1])):
            raise OAuthError("invalid_token", "the access token is invalid", status=401)
        return claims

    def _verified_claims(self, token: str, audience: str | None) -> dict[str, Any]:
        """The signature is checked once per token and key set, the claims every time.

        The cache is keyed by the token's SHA-256 (no token is kept) and remembers the
        key set that verified it: once the ring changes (a key unpublished, say) the
        token is verified again against the new set. ``typ``, ``iss``, ``aud``, ``exp``
        and the rest are checked at ``now`` on every call, as are, by the caller, the
        denylist and the user's revocation. A token that fails is not remembered.
        """
        key_set = self.keys.key_set()
        digest = hashlib.sha256(token.encode()).digest()
        found = self._verified.get(digest)
        if found is not None and found[0] is key_set:
            header, claims = found[1], found[2]
        else:
            header, claims = verify_signature(token, key_set)
        now = self.clock.now()
        check_access_claims(header, claims, issuer=self.issuer, now=now, audience=audience)
        if found is None or found[0] is not key_set:
            # Kept while it can verify: until exp and the clock skew forgiven past it.
            self._verified.set(
                digest, (key_set, header, claims), float(claims["exp"]) + MAX_CLOCK_SKEW
            )
        return dict(claims)

    async def deny(self, tokens: Sequence[tuple[str, float]], reason: str) -> None:
        """Denylist (jti, exp) pairs for as long as each still verifies: until ``exp`` plus
        the clock skew verification forgives, or a revoked token would verify again."""
        now = self.clock.now()
        for jti, exp in tokens:
            remaining = exp + MAX_CLOCK_SKEW - now
            if remaining > 0:
                await self.hot.set(DENYLIST_PREFIX + jti, reason.encode(), ttl=remaining + 1)

    async def revoke_families(self, reason: str, actor: str, **selector: str) -> list[str]:
        """Revoke refresh families and every live access token they produced."""
        now = self.clock.now()
        families = await self.grants.revoke_families(now, reason, **selector)
        if families:
            await self.deny(await self.grants.live_tokens(now, family_ids=families), reason)
            self.audit.emit(
                AuditEvent(
                    "oauth.family.revoked",
                    Outcome.SUCCESS,
                    actor=actor,
                    policy=reason,
                    details={"families": families, **selector},
                )
            )
        return families
