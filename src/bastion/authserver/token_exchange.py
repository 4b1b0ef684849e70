"""RFC 8693 token exchange at the token endpoint: a narrower token for another audience
that names the original app in ``act``."""

from __future__ import annotations

from typing import Any

from bastion.audit import Outcome
from bastion.authserver.access import Authentication
from bastion.authserver.grants import (
    ACCESS_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    GrantContext,
    jkt,
    token_type,
)
from bastion.errors import OAuthError
from bastion.oauth import exchange, refresh
from bastion.oauth.authorize import check_resources
from bastion.oauth.clients import Client
from bastion.oauth.dpop import DpopProof, bound_key
from bastion.oauth.params import Params, scopes


async def token_exchange(
    ctx: GrantContext,
    client: Client,
    params: Params,
    instance: refresh.Instance,
    proof: DpopProof | None,
) -> dict[str, Any]:
    """RFC 8693 §2: a narrower token for another audience, naming the original app in ``act``."""
    if params.require("subject_token_type") != ACCESS_TOKEN_TYPE:
        raise OAuthError("invalid_request", "subject_token_type must be an access token")
    if params.get("actor_token") is not None:
        raise OAuthError("invalid_request", "actor tokens are not supported")
    if params.get("requested_token_type") not in (None, ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE):
        raise OAuthError("invalid_request", "only access tokens can be requested")
    subject, lifetime = await _exchange_subject(ctx, client, params.require("subject_token"))
    targets = params.resources + tuple(filter(None, [params.get("audience")]))
    if not targets:
        raise OAuthError("invalid_target", "audience or resource is required")
    check_resources(targets, client)
    granted = tuple(subject.get("scope", "").split())
    requested = scopes(params.get("scope")) or granted
    if not set(requested) <= set(granted) or not set(requested) <= client.scopes:
        raise OAuthError("invalid_scope", "scopes can only narrow the subject token's")
    act: dict[str, Any] = {"sub": subject["client_id"], "client_id": subject["client_id"]}
    if "act" in subject:
        act["act"] = subject["act"]
    who = Authentication(
        subject["sub"], subject.get("auth_time"), subject.get("acr"), tuple(subject.get("amr", ()))
    )
    # The exchanged token belongs to the subject token's family and code, so revoking
    # those (a refresh reuse, /revoke, a replayed code) revokes it too.
    family_id, code = await ctx.grants.lineage(subject["jti"])
    token, claims = await ctx.access.mint(
        client_id=client.client_id,
        who=who,
        scope=requested,
        audience=targets,
        lifetime=lifetime,
        act=act,
        family_id=family_id,
        code_hash=code,
        # With its own proof the client holds the new token by its key (it acts for the
        # user); without one the subject's binding stays, so an exchange can never turn
        # a device-bound token into a bearer token (RFC 9449 §6 kept across RFC 8693).
        jkt=jkt(proof) or bound_key(subject),
    )
    ctx.emit(
        "oauth.token.exchanged",
        Outcome.SUCCESS,
        client,
        subject=subject["sub"],
        audience=list(targets),
        scope=list(requested),
        subject_bound=bound_key(subject) is not None,
    )
    return {
        "access_token": token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": token_type(claims),
        "expires_in": claims["exp"] - claims["iat"],
        "scope": " ".join(requested),
    }


async def _exchange_subject(
    ctx: GrantContext, client: Client, token: str
) -> tuple[dict[str, Any], float]:
    """The subject token's claims, if this client may exchange it, and how long the
    exchanged token may live. Every refusal is audited."""
    try:
        subject = await ctx.access.verify(token)
    except OAuthError as exc:
        ctx.emit("oauth.exchange.refused", Outcome.DENIED, client, reason="subject token")
        raise OAuthError("invalid_grant", "the subject token is invalid") from exc
    try:
        exchange.check_subject(subject, client)
        return subject, exchange.lifetime(subject["exp"], ctx.clock.now())
    except OAuthError as exc:
        ctx.emit(
            "oauth.exchange.refused",
            Outcome.DENIED,
            client,
            reason=exc.description,
            subject=subject["sub"],
            issued_to=subject["client_id"],
        )
        raise
