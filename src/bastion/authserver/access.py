"""Access tokens as a service: mint (and index), verify (with revocation), revoke.

Revocation of a JWT access token is a denylist entry for its ``jti`` in hot state, kept
until the token's ``exp``; verification consults it after the signature, and also
refuses tokens issued before the user's "revoke everything" moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bastion.accounts.stores import UserStore
from bastion.audit import AuditEvent, AuditPipeline, Outcome
from bastion.authserver.stores import GrantStore
from bastion.clock import Clock
from bastion.config import Settings
from bastion.crypto.signing import SigningKeys
from bastion.errors import OAuthError
from bastion.oauth.tokens import (
    ACCESS_TOKEN_TYP,
    MAX_CLOCK_SKEW,
    access_token_claims,
    verify_access_token,
)
from bastion.store.protocols import HotStore

DENYLIST_PREFIX = "revoked-jti:"


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
    ) -> dict[str, Any]:
        """The claims of a new access token (its ``jti`` fresh): not yet indexed."""
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
    ) -> tuple[str, dict[str, Any]]:
        claims = self.claims(
            client_id=client_id,
            who=who,
            scope=scope,
            audience=audience,
            lifetime=lifetime,
            act=act,
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
        claims = verify_access_token(
            token, self.keys.key_set(), issuer=self.issuer, now=self.clock.now(), audience=audience
        )
        if await self.hot.get(DENYLIST_PREFIX + claims["jti"]) is not None:
            raise OAuthError("invalid_token", "the access token is invalid", status=401)
        user = await self.users.get(claims["sub"])
        # iat has whole seconds; tokens from earlier in the revocation's own second are
        # caught by the denylist entry the revocation wrote for each of them.
        if user is not None and (not user.enabled or claims["iat"] < int(user.tokens_valid_after)):
            raise OAuthError("invalid_token", "the access token is invalid", status=401)
        return claims

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
