"""The token endpoint's grants (RFC 6749 §4.1.3, §4.4, §6), bound to the stores; token
exchange (RFC 8693) is in ``token_exchange``, the table by name in ``grant_types``.

Each handler receives an authenticated client and the request parameters, and returns
the JSON body of a successful answer or raises ``OAuthError``. Every outcome, success
or refusal, reaches the audit pipeline with its reason.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from typing import Any, Literal

from bastion.accounts.levels import satisfies
from bastion.accounts.stores import UserStore
from bastion.audit import AuditEvent, AuditPipeline, Outcome
from bastion.authserver.access import AccessTokens, Authentication
from bastion.authserver.stores import GrantStore, Issuance, IssuedToken
from bastion.clock import Clock
from bastion.config import Settings
from bastion.crypto.signing import SigningKeys
from bastion.device.policies import RiskPolicies
from bastion.device.risk import Action
from bastion.device.signals import RiskRequest
from bastion.errors import OAuthError
from bastion.oauth import refresh
from bastion.oauth.authorize import check_resources, narrow_resources
from bastion.oauth.clients import (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    REFRESH_TOKEN,
    Client,
)
from bastion.oauth.codes import CodeGrant, check_redemption, code_hash
from bastion.oauth.dpop import DpopProof
from bastion.oauth.params import Params, scopes
from bastion.oauth.refresh import Family
from bastion.oauth.tokens import ID_TOKEN_TYP, id_token_claims

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"


@dataclass
class GrantContext:
    settings: Settings
    access: AccessTokens
    keys: SigningKeys
    grants: GrantStore
    users: UserStore
    audit: AuditPipeline
    clock: Clock
    refresh_key: bytes
    # Device risk of token issuance and refresh ([device.token], [device.refresh]).
    risk: RiskPolicies | None = None

    def emit(self, action: str, outcome: Outcome, client: Client, **details: Any) -> None:
        self.audit.emit(
            AuditEvent(action, outcome, actor=f"client:{client.client_id}", details=details)
        )


def _audience(
    requested: tuple[str, ...], granted: tuple[str, ...], client: Client, ctx: GrantContext
) -> tuple[str, ...]:
    return narrow_resources(requested, granted or ctx.access.default_audience(), client)


def _issued(
    claims: dict[str, Any], *, family: Family | None = None, code: str | None = None
) -> IssuedToken:
    return IssuedToken(
        jti=claims["jti"],
        client_id=claims["client_id"],
        subject=claims["sub"],
        expires_at=claims["exp"],
        family_id=None if family is None else family.family_id,
        code_hash=code,
    )


def token_type(claims: dict[str, Any]) -> str:
    """RFC 9449 §5: "DPoP" for a token bound to a key, "Bearer" otherwise."""
    return "DPoP" if "cnf" in claims else "Bearer"


def jkt(proof: DpopProof | None) -> str | None:
    return None if proof is None else proof.jkt


def _token_response(
    ctx: GrantContext,
    client: Client,
    who: Authentication,
    scope: tuple[str, ...],
    claims: dict[str, Any],
    *,
    family: Family | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """The answer for tokens whose index entry is committed: signing comes last."""
    body: dict[str, Any] = {
        "access_token": ctx.access.sign(claims),
        "token_type": token_type(claims),
        "expires_in": claims["exp"] - claims["iat"],
        "scope": " ".join(scope),
    }
    if family is not None:
        body["refresh_token"] = refresh.mint(ctx.refresh_key, family, family.generation)
    if "openid" in scope and who.auth_time is not None:
        now = ctx.clock.now()
        id_claims = id_token_claims(
            issuer=ctx.settings.issuer,
            subject=who.subject,
            client_id=client.client_id,
            now=now,
            lifetime=ctx.settings.oauth.id_token_lifetime,
            auth_time=who.auth_time,
            nonce=nonce,
            acr=who.acr,
            amr=who.amr,
        )
        body["id_token"] = ctx.keys.sign_jwt(id_claims, typ=ID_TOKEN_TYP)
    return body


async def authorization_code(
    ctx: GrantContext,
    client: Client,
    params: Params,
    instance: refresh.Instance,
    proof: DpopProof | None,
) -> dict[str, Any]:
    code = params.require("code")
    now = ctx.clock.now()
    hashed = code_hash(code)
    # Filled by ``issue``, which the store calls for the redemption (perhaps more than
    # once, perhaps before the code is consumed): the checks and the token's claims, used
    # below only when this request consumed the code.
    refused: list[tuple[OAuthError, bool]] = []
    prepared: list[tuple[Authentication, Family | None, dict[str, Any]]] = []

    def issue(grant: CodeGrant) -> Issuance | None:
        refused.clear()
        prepared.clear()
        try:
            check_redemption(
                grant,
                client_id=client.client_id,
                redirect_uri=params.get("redirect_uri"),
                verifier=params.get("code_verifier"),
                now=now,
            )
            _check_code_key(grant, proof)
        except OAuthError as exc:
            refused.append((exc, True))
            return None  # the code stays consumed: one attempt per code (RFC 6749 §4.1.2)
        try:
            audience = _audience(params.resources, grant.resources, client, ctx)
        except OAuthError as exc:
            refused.append((exc, False))
            return None
        who = Authentication(grant.subject, grant.auth_time, grant.acr, grant.amr)
        family = None
        if client.allows_grant(REFRESH_TOKEN):
            family = _new_family(ctx, client, who, grant.scope, grant.resources, grant.session_id)
            if proof is not None and client.is_public:
                # RFC 9449 §5: a public client's refresh tokens are bound to its key.
                family = replace(family, dpop_jkt=proof.jkt)
        claims = ctx.access.claims(
            client_id=client.client_id,
            who=who,
            scope=grant.scope,
            audience=audience,
            jkt=jkt(proof),
        )
        prepared.append((who, family, claims))
        return family, _issued(claims, family=family, code=hashed)

    # One transaction: consume the code and, if its checks pass, write the family, the
    # code's link to it and the token's index entry, unless the code was marked replayed.
    grant, consumed_now, issued = await ctx.grants.redeem_code(hashed, now, issue)
    if grant is None:
        ctx.emit("oauth.code.refused", Outcome.DENIED, client, reason="unknown code")
        raise OAuthError("invalid_grant", "the authorization code is invalid")
    if not consumed_now:
        # RFC 6749 §4.1.2 and RFC 9700 §4.5: a code used twice was stolen; everything
        # issued from it is revoked (its refresh family and access tokens). The mark also
        # reaches a first redemption still in flight: its tokens are indexed only in a
        # transaction that finds the code unmarked.
        await ctx.grants.mark_replayed(hashed, now)
        await _revoke_code(ctx, client, hashed)
        ctx.emit("oauth.code.replayed", Outcome.DENIED, client, subject=grant.subject)
        raise OAuthError("invalid_grant", "the authorization code was already used")
    if refused:
        exc, from_checks = refused[0]
        if from_checks:
            ctx.emit("oauth.code.refused", Outcome.DENIED, client, reason=exc.description)
        raise exc
    if not issued or not prepared:
        await _revoke_code(ctx, client, hashed)
        raise OAuthError("invalid_grant", "the authorization code was already used")
    who, family, claims = prepared[0]
    # Read once the tokens are indexed, so a user revoked before this read is refused
    # here, and one revoked after it finds the family and the token to revoke.
    user = await ctx.users.get(grant.subject)
    if user is None or not user.enabled or grant.auth_time < user.tokens_valid_after:
        await _revoke_code(ctx, client, hashed, "user_revoked")
        raise OAuthError("invalid_grant", "the user's authorization is no longer valid")
    try:
        scope = await _device_answer(ctx, "token", client, who, grant.scope, proof, instance)
    except OAuthError:
        # Judged once the code is redeemed (the subject is known only then): what was
        # issued for it is revoked, as for a user revoked meanwhile.
        await _revoke_code(ctx, client, hashed, "device_risk")
        raise
    if scope != grant.scope:
        claims["scope"] = " ".join(scope)  # signed below, after this change
    await _bind_device(ctx, who, proof)
    body = _token_response(ctx, client, who, scope, claims, family=family, nonce=grant.nonce)
    ctx.emit(
        "oauth.token.issued",
        Outcome.SUCCESS,
        client,
        grant=AUTHORIZATION_CODE,
        subject=grant.subject,
        scope=list(scope),
    )
    return body


async def _device_answer(
    ctx: GrantContext,
    action: Literal["token", "refresh"],
    client: Client,
    who: Authentication,
    scope: tuple[str, ...],
    proof: DpopProof | None,
    instance: refresh.Instance,
) -> tuple[str, ...]:
    """The scopes to issue under the device risk policy of ``action`` (``[device.token]``
    for the code and client credentials grants, ``[device.refresh]``), judged on the
    device of the request's DPoP key.

    ``limit`` keeps only the policy's ``limit_scopes`` (RFC 6749 §5.1: the answer's
    ``scope`` says what was granted); the grant itself keeps its scopes, so a later
    request from a device in better standing gets them back. ``step_up`` and ``deny``
    refuse with ``invalid_grant`` (RFC 6749 §5.2; RFC 9470's error is a resource
    server's): the description tells the app to sign in again, which the sign-in
    policy answers with a second factor. A grant whose sign-in already reached the
    policy's ``step_up_acr`` has stepped up and is not refused for ``step_up``.
    """
    policy = getattr(ctx.settings.device, action)
    if ctx.risk is None or policy is None:
        return scope
    key = jkt(proof)
    judgement = await ctx.risk.judge(
        action,
        policy,
        RiskRequest(
            # A client's own token has no user (its subject is the client, RFC 9068 §2.2).
            user_id=None if who.subject == client.client_id else who.subject,
            client_id=client.client_id,
            jkt=key,
            # Tokens issued with a proof are bound to its key (RFC 9449 §5).
            bound=key is not None,
            ip=dict(instance.parts).get("address"),
        ),
    )
    if judgement is None:
        return scope
    enforced = judgement.enforced
    if enforced is Action.STEP_UP and satisfies(who.acr, policy.step_up_acr):
        return scope
    if enforced is Action.LIMIT:
        return tuple(s for s in scope if s in policy.limit_scopes)
    if enforced is Action.STEP_UP:
        raise OAuthError(
            "invalid_grant", "sign in again: this device needs a stronger authentication"
        )
    if enforced is Action.DENY:
        raise OAuthError("invalid_grant", "tokens cannot be issued to this device")
    return scope


async def _bind_device(ctx: GrantContext, who: Authentication, proof: DpopProof | None) -> None:
    """The user now uses the device of the proof's key: its ``new_device`` signal ends."""
    if ctx.risk is not None and proof is not None:
        await ctx.risk.sources.bind(proof.jkt, who.subject)


def _check_code_key(grant: CodeGrant, proof: DpopProof | None) -> None:
    # RFC 9449 §10: a code whose request named a key is redeemed with that key only, so
    # a code intercepted on its way back to the app is useless to anyone without it.
    if grant.dpop_jkt is not None and (proof is None or proof.jkt != grant.dpop_jkt):
        raise OAuthError("invalid_grant", "the code is bound to another DPoP key")


def _check_family_key(
    ctx: GrantContext, client: Client, family: Family, proof: DpopProof | None
) -> None:
    # RFC 9449 §5: checked before the rotation is judged, so a thief without the key
    # neither gets tokens nor revokes the user's family by replaying an old token.
    if family.dpop_jkt is None:
        return
    if proof is None or proof.jkt != family.dpop_jkt:
        ctx.emit(
            "oauth.refresh.refused",
            Outcome.DENIED,
            client,
            reason="dpop_proof_missing" if proof is None else "dpop_wrong_key",
            subject=family.subject,
            family=family.family_id,
        )
        raise OAuthError("invalid_grant", "the refresh token is bound to another DPoP key")


async def _revoke_code(
    ctx: GrantContext, client: Client, hashed: str, reason: str = "code_replay"
) -> None:
    family_id = await ctx.grants.family_of_code(hashed)
    if family_id:
        await ctx.access.revoke_families(reason, f"client:{client.client_id}", family_id=family_id)
    await ctx.access.deny(await ctx.grants.live_tokens(ctx.clock.now(), code_hash=hashed), reason)


def _new_family(
    ctx: GrantContext,
    client: Client,
    who: Authentication,
    scope: tuple[str, ...],
    resources: tuple[str, ...],
    session_id: str,
) -> Family:
    now = ctx.clock.now()
    return Family(
        family_id=secrets.token_urlsafe(16),
        salt=os.urandom(16),
        client_id=client.client_id,
        subject=who.subject,
        scope=scope,
        resources=resources,
        generation=0,
        rotated_at=now,
        created_at=now,
        last_used_at=now,
        expires_at=now + ctx.settings.oauth.refresh_absolute_lifetime,
        session_id=session_id,
        auth_time=who.auth_time or now,
        acr=who.acr or "",
        amr=who.amr,
    )


async def refresh_token(
    ctx: GrantContext,
    client: Client,
    params: Params,
    instance: refresh.Instance,
    proof: DpopProof | None,
) -> dict[str, Any]:
    token = params.require("refresh_token")
    parsed = refresh.parse(token)
    family = await ctx.grants.get_family(parsed[0]) if parsed else None
    if parsed is None or family is None or not refresh.authentic(ctx.refresh_key, family, token):
        ctx.emit("oauth.refresh.refused", Outcome.DENIED, client, reason="unknown token")
        raise OAuthError("invalid_grant", "the refresh token is invalid")
    if family.client_id != client.client_id:
        # Bound to its client (RFC 6749 §6): another client presenting it gains nothing.
        ctx.emit("oauth.refresh.refused", Outcome.DENIED, client, reason="other client's token")
        raise OAuthError("invalid_grant", "the refresh token is invalid")
    _check_family_key(ctx, client, family, proof)
    generation = parsed[1]
    outcome = await _judge(ctx, client, family, generation, instance)
    # Checked before the rotation, so that a refused request does not use up the token.
    # The client may have been narrowed since the grant: nothing beyond what it has now.
    requested = scopes(params.get("scope"))
    scope = tuple(s for s in refresh.narrow_scope(family.scope, requested) if s in client.scopes)
    granted = tuple(r for r in family.resources if r in client.resources)
    if family.resources and not granted:
        raise OAuthError("invalid_grant", "the grant's audience is no longer allowed")
    audience = _audience(params.resources, granted, client, ctx)
    user = await ctx.users.get(family.subject)
    if user is None or not user.enabled:
        raise OAuthError("invalid_grant", "the user's authorization is no longer valid")
    who = Authentication(family.subject, family.auth_time, family.acr, family.amr)
    # Judged before the rotation, so that a refusal leaves the refresh token usable.
    scope = await _device_answer(ctx, "refresh", client, who, scope, proof, instance)
    await _bind_device(ctx, who, proof)
    claims = ctx.access.claims(
        client_id=client.client_id, who=who, scope=scope, audience=audience, jkt=jkt(proof)
    )
    # RFC 9449 §5: a public client's family that began without DPoP is bound to the key
    # of its first refresh with a proof, and from then on to that key only.
    binding = proof.jkt if proof is not None and client.is_public else None
    family, outcome = await _issue(
        ctx, client, family, generation, outcome, instance, _issued(claims, family=family), binding
    )
    body = _token_response(ctx, client, who, scope, claims, family=family)
    ctx.emit(
        "oauth.token.issued",
        Outcome.SUCCESS,
        client,
        grant=REFRESH_TOKEN,
        subject=family.subject,
        replay=outcome is refresh.Outcome.REPLAY,
    )
    return body


async def _judge(
    ctx: GrantContext,
    client: Client,
    family: Family,
    generation: int,
    instance: refresh.Instance,
) -> refresh.Outcome:
    """ROTATE or REPLAY for a usable token; anything else is refused, and reuse revokes
    the whole family (RFC 9700 §4.14.2)."""
    settings = ctx.settings.oauth
    outcome = refresh.decide(
        family,
        generation,
        ctx.clock.now(),
        idle_lifetime=settings.refresh_idle_lifetime,
        grace=settings.refresh_grace,
        instance=instance,
    )
    if outcome is refresh.Outcome.REUSE:
        await ctx.access.revoke_families(
            "refresh_reuse", f"client:{client.client_id}", family_id=family.family_id
        )
        ctx.emit(
            "oauth.refresh.reuse_detected",
            Outcome.DENIED,
            client,
            subject=family.subject,
            family=family.family_id,
            generation=generation,
        )
        raise OAuthError("invalid_grant", "the refresh token was already used")
    if outcome in (refresh.Outcome.EXPIRED, refresh.Outcome.REVOKED):
        ctx.emit("oauth.refresh.refused", Outcome.DENIED, client, reason=outcome.value)
        raise OAuthError("invalid_grant", "the refresh token is no longer valid")
    return outcome


async def _issue(
    ctx: GrantContext,
    client: Client,
    family: Family,
    generation: int,
    outcome: refresh.Outcome,
    instance: refresh.Instance,
    token: IssuedToken,
    binding: str | None = None,
) -> tuple[Family, refresh.Outcome]:
    """Index the new access token in the transaction that rotates the family past
    ``generation`` (ROTATE) or finds it still live (REPLAY); the family as it then is.

    Both are conditional on the family not being revoked, in the same transaction as the
    index entry: a revocation either comes first (nothing is issued) or finds the token
    to denylist, so a token minted during a revocation (a thief's refresh racing the
    app's) is never left live.
    """
    if outcome is refresh.Outcome.ROTATE:
        now = ctx.clock.now()
        fingerprint = instance.fingerprint(family.salt)
        if await ctx.grants.rotate_family(
            family.family_id, generation, now, fingerprint, token, binding
        ):
            # Our conditional update succeeded, so the row now holds exactly this.
            advanced = replace(
                family,
                generation=generation + 1,
                rotated_at=now,
                last_used_at=now,
                rotated_by=fingerprint,
                dpop_jkt=family.dpop_jkt or binding,
            )
            return advanced, refresh.Outcome.ROTATE
        # Lost the race to a concurrent refresh with the same token, or to a revocation:
        # judge it again against the family as it is now (a retry inside the grace
        # window, reuse, or revoked).
        current = await ctx.grants.get_family(family.family_id)
        if current is None:
            raise OAuthError("invalid_grant", "the refresh token is invalid")
        family = current
        outcome = await _judge(ctx, client, family, generation, instance)
    if outcome is refresh.Outcome.REPLAY and await ctx.grants.reissue_in_family(
        family.family_id, family.generation, token
    ):
        return family, outcome
    ctx.emit("oauth.refresh.refused", Outcome.DENIED, client, reason="family changed meanwhile")
    raise OAuthError("invalid_grant", "the refresh token is invalid")


async def client_credentials(
    ctx: GrantContext,
    client: Client,
    params: Params,
    instance: refresh.Instance,
    proof: DpopProof | None,
) -> dict[str, Any]:
    requested = scopes(params.get("scope"))
    if not set(requested) <= client.scopes:
        raise OAuthError("invalid_scope", "a requested scope is not allowed for this client")
    check_resources(params.resources, client)
    audience = params.resources or ctx.access.default_audience()
    requested = await _device_answer(
        ctx, "token", client, Authentication(client.client_id), requested, proof, instance
    )
    token, claims = await ctx.access.mint(
        client_id=client.client_id,
        who=Authentication(client.client_id),
        scope=requested,
        audience=audience,
        jkt=jkt(proof),
    )
    ctx.emit("oauth.token.issued", Outcome.SUCCESS, client, grant=CLIENT_CREDENTIALS)
    return {
        "access_token": token,
        "token_type": token_type(claims),
        "expires_in": claims["exp"] - claims["iat"],
        "scope": " ".join(requested),
    }
