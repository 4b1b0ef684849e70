"""Ending and inspecting tokens: revocation (RFC 7009), introspection (RFC 7662), and
revoking everything a user holds (a lost phone)."""

from __future__ import annotations

from typing import Any

from bastion.accounts.stores import SessionStore
from bastion.audit import AuditEvent, Outcome
from bastion.authserver.grants import GrantContext, token_type
from bastion.errors import OAuthError
from bastion.oauth import refresh
from bastion.oauth.clients import Client

HINTS = (None, "access_token", "refresh_token")


async def revoke(ctx: GrantContext, client: Client, token: str, hint: str | None) -> None:
    """RFC 7009 §2.1: only the client the token was issued to may revoke it. An unknown or
    invalid token is not an error (§2.2): the answer is the same 200 either way."""
    if hint not in HINTS:
        raise OAuthError("unsupported_token_type", "token_type_hint is not supported")
    parsed = refresh.parse(token)
    if parsed is not None:
        family = await ctx.grants.get_family(parsed[0])
        if family is None or not refresh.authentic(ctx.refresh_key, family, token):
            return
        if family.client_id != client.client_id:
            _refused(ctx, client, "refresh token of another client")
        await ctx.access.revoke_families(
            "revoked_by_client", f"client:{client.client_id}", family_id=family.family_id
        )
        return
    try:
        claims = await ctx.access.verify(token)
    except OAuthError:
        return
    if claims["client_id"] != client.client_id:
        _refused(ctx, client, "access token of another client")
    await ctx.access.deny([(claims["jti"], float(claims["exp"]))], "revoked_by_client")
    ctx.audit.emit(
        AuditEvent(
            "oauth.token.revoked",
            Outcome.SUCCESS,
            actor=f"client:{client.client_id}",
            target=claims["jti"],
        )
    )


def _refused(ctx: GrantContext, client: Client, reason: str) -> None:
    ctx.audit.emit(
        AuditEvent(
            "oauth.revocation.refused",
            Outcome.DENIED,
            actor=f"client:{client.client_id}",
            details={"reason": reason},
        )
    )
    raise OAuthError("unauthorized_client", "the token was not issued to this client")


async def introspect(ctx: GrantContext, client: Client, token: str) -> dict[str, Any]:
    """RFC 7662 §2.2: ``active: false`` for anything not currently valid, with no reason."""
    inactive: dict[str, Any] = {"active": False}
    parsed = refresh.parse(token)
    if parsed is not None:
        family = await ctx.grants.get_family(parsed[0])
        if (
            family is None
            or family.client_id != client.client_id
            or not refresh.authentic(ctx.refresh_key, family, token)
        ):
            return inactive
        settings = ctx.settings.oauth
        outcome = refresh.decide(
            family,
            parsed[1],
            ctx.clock.now(),
            idle_lifetime=settings.refresh_idle_lifetime,
            grace=0,
        )
        if outcome is not refresh.Outcome.ROTATE:
            return inactive
        answer: dict[str, Any] = {
            "active": True,
            "token_type": "refresh_token",
            "client_id": family.client_id,
            "sub": family.subject,
            "scope": " ".join(family.scope),
            "exp": int(family.expires_at),
            "iss": ctx.settings.issuer,
        }
        if family.dpop_jkt is not None:
            answer["cnf"] = {"jkt": family.dpop_jkt}
        return answer
    try:
        claims = await ctx.access.verify(token)
    except OAuthError:
        return inactive
    aud = claims.get("aud")
    audiences = set(aud if isinstance(aud, list) else [aud])
    if not audiences & client.resources:
        # RFC 7662 §4: a resource server learns only about tokens meant for it.
        return inactive
    # RFC 9449 §6.2: a bound token is introspected with its cnf and token_type "DPoP",
    # so a resource server knows to ask for the proof.
    return {"active": True, "token_type": token_type(claims), **claims}


async def revoke_user(
    ctx: GrantContext, sessions: SessionStore, user_id: str, actor: str
) -> dict[str, int]:
    """Everything a user holds stops working: sessions, refresh families, access tokens."""
    now = ctx.clock.now()
    await ctx.users.invalidate_tokens(user_id, now)
    session_ids = await sessions.revoke(now, subject=user_id)
    families = await ctx.access.revoke_families("user_revoked", actor, subject=user_id)
    live = await ctx.grants.live_tokens(now, subject=user_id)
    await ctx.access.deny(live, "user_revoked")
    ctx.audit.emit(
        AuditEvent(
            "oauth.user.revoked",
            Outcome.SUCCESS,
            actor=actor,
            target=user_id,
            details={
                "sessions": len(session_ids),
                "families": len(families),
                "access_tokens": len(live),
            },
        )
    )
    return {"sessions": len(session_ids), "families": len(families), "access_tokens": len(live)}
