"""The token endpoint (RFC 6749 §3.2): POST only, never cached; DPoP proofs (RFC 9449
§5) and, where ``[device.token]`` or ``[device.refresh]`` asks for them, device
assertions checked before any grant is judged."""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.audit import AuditEvent, Outcome
from bastion.authserver.grant_types import HANDLERS
from bastion.authserver.server import AuthServer
from bastion.device.binding import ASSERTION_HEADER as ASSERTION
from bastion.device.binding import request_target
from bastion.device.policies import admitted
from bastion.device.service import DeviceTrust
from bastion.errors import DeviceRefused, DeviceUnverifiable, DpopError, OAuthError
from bastion.oauth import refresh
from bastion.oauth.clients import REFRESH_TOKEN as REFRESH
from bastion.oauth.clients import Client
from bastion.oauth.dpop import DpopProof
from bastion.oauth.params import Params
from bastion.oauth.refresh import Instance
from bastion.web.oauth.common import authenticate, form, oauth_error, oauth_json
from bastion.web.oauth.installation import check_installation_key


async def token(server: AuthServer, device: DeviceTrust | None, request: Request) -> Response:
    client: Client | None = None
    try:
        params = await form(request)
        client = await authenticate(server, request, params)
        grant_type = params.require("grant_type")
        handler = HANDLERS.get(grant_type)
        if handler is None:
            raise OAuthError("unsupported_grant_type", "this grant type is not supported")
        if not client.allows_grant(grant_type):
            server.grants.audit.emit(
                AuditEvent(
                    "oauth.token.refused",
                    Outcome.DENIED,
                    actor=f"client:{client.client_id}",
                    details={"reason": "grant type not allowed", "grant_type": grant_type},
                )
            )
            raise OAuthError("unauthorized_client", "this client may not use this grant type")
        proof = await _proof(server, request, client)
        await check_installation_key(device, client, proof)
        await _device_assertion(server, device, request, client, params, proof)
        body = await handler(server.grants, client, params, _instance(request), proof)
        return oauth_json(body, headers=_nonce(server, client))
    except DpopError as exc:
        # RFC 9449 §5.1 / §8: a 400 with the DPoP error code; use_dpop_nonce carries the
        # nonce to use, and so does every answer to a client that must use nonces.
        headers = _nonce(server, client, force=exc.error == "use_dpop_nonce")
        return oauth_json({"error": exc.error, "error_description": exc.description}, 400, headers)
    except OAuthError as exc:
        # One record for every refusal, whatever stage raised it (the grants add detail).
        server.grants.audit.emit(
            AuditEvent(
                "oauth.token.refused",
                Outcome.DENIED,
                actor="client",
                details={"error": exc.error, "reason": exc.description},
            )
        )
        response = oauth_error(exc)
        response.headers.update(_nonce(server, client))
        return response


async def _proof(server: AuthServer, request: Request, client: Client) -> DpopProof | None:
    """The request's DPoP proof, checked; None when it has none and needs none."""
    dpop = server.dpop
    values = request.headers.getlist("dpop")
    actor = f"client:{client.client_id}"
    if not values:
        if dpop.required(client):
            dpop.refused(actor, "missing", server.token_endpoint)
            raise DpopError("missing", "this client must send a DPoP proof")
        return None
    return await dpop.check(
        values,
        method="POST",
        uri=server.token_endpoint,
        actor=actor,
        nonce=dpop.nonce_required(client),
    )


async def _device_assertion(
    server: AuthServer,
    trust: DeviceTrust | None,
    request: Request,
    client: Client,
    params: Params,
    proof: DpopProof | None,
) -> None:
    """Return when the request needs no device assertion or carries a valid one made by
    the device its DPoP proof's key is bound to.

    The assertion's device must be the proof's (RFC 9449 §4.3 proves the key; the key
    names the installation): a token request without a DPoP proof is refused
    (``not_dpop_bound``), and so is one whose key names no attested device
    (``unknown_device``), or an assertion by another device (``wrong_device``).

    The policy's ``cohort`` and ``mode`` apply: a request outside the cohort is not
    asked for an assertion. The cohort is judged on what the token policy's judgement
    uses: the user, which before the grant runs is known for a refresh (the family's,
    when the token is authentic) and never for a client's own token; for a code, which
    is redeemed only once, the device stands for the user. In
    ``mode = "audit"`` a refusal is recorded (``device.assertion``, ``decided``
    ``refused``) and the grant runs, judged by the risk policy as usual.

    A refused assertion is ``invalid_request`` (RFC 6749 §5.2: the request lacks a
    required part or it is unacceptable), never ``invalid_grant``: the grant itself is
    sound, and a client that hears ``invalid_grant`` on a refresh discards its refresh
    token and signs its user out for what may be one bad request. When the assertion
    cannot be judged (trust data unavailable), a policy whose outage fallback is
    ``allow`` (or in audit mode) lets the request through; any other answers
    ``temporarily_unavailable`` with 503, as the authorization endpoint would (RFC 6749
    §4.1.2.1): the risk engine's step-up and limit answers have no place before a grant
    runs."""
    if trust is None:
        return
    grant_type = params.require("grant_type")
    policy = trust.settings.refresh if grant_type == "refresh_token" else trust.settings.token
    if policy is None or not policy.require_assertion:
        return
    device = None if proof is None else await trust.devices.by_jkt(proof.jkt)
    app = client.client_id
    if device is not None and device.registered_client_id == app:
        app = device.client_id
    cohort = None if policy.cohort is None else trust.settings.cohorts.get(policy.cohort)
    if not admitted(
        cohort,
        user_id=await _refresh_user(server, client, params) if grant_type == REFRESH else None,
        device_id=None if device is None else device.device_id,
        client_id=app,
        app_version=None if device is None else device.app_version,
    ):
        return
    audit = policy.mode == "audit"
    try:
        if proof is None:
            trust.refuse_assertion(
                client.client_id, "not_dpop_bound", "a DPoP proof is required", policy.mode
            )
        await trust.verify_assertion(
            client_id=client.client_id,
            method="POST",
            target=request_target(request.scope),
            body=await request.body(),
            header_values=[v.encode("latin-1") for v in request.headers.getlist(ASSERTION)],
            device=device,
            mode=policy.mode,
        )
    except DeviceRefused as exc:
        if audit:
            return
        if exc.reason == "not_dpop_bound":
            raise OAuthError(
                "invalid_request", "a Device-Assertion needs a DPoP proof by the device's key"
            ) from exc
        raise OAuthError("invalid_request", "a valid Device-Assertion is required") from exc
    except DeviceUnverifiable as exc:
        if policy.outage != "allow" and not audit:
            raise OAuthError(
                "temporarily_unavailable", "the device cannot be verified now", status=503
            ) from exc


async def _refresh_user(server: AuthServer, client: Client, params: Params) -> str | None:
    """The user of an authentic refresh token of this client, read without using it."""
    token = params.get("refresh_token")
    parsed = None if token is None else refresh.parse(token)
    if token is None or parsed is None:
        return None
    family = await server.grants.grants.get_family(parsed[0])
    if (
        family is None
        or family.client_id != client.client_id
        or not refresh.authentic(server.grants.refresh_key, family, token)
    ):
        return None
    return family.subject


def _nonce(server: AuthServer, client: Client | None, *, force: bool = False) -> dict[str, str]:
    """``DPoP-Nonce`` (RFC 9449 §8.2) for a client that must use server nonces: on every
    answer, so the next proof can carry the newest one."""
    if force or server.dpop.nonce_required(client):
        return {"dpop-nonce": server.dpop.current_nonce()}
    return {}


def _instance(request: Request) -> Instance:
    """What tells one app instance from another here: its address (behind a trusted proxy,
    the forwarded one) and its User-Agent. Recorded at rotation for the refresh grace."""
    address = request.client.host if request.client else ""
    return Instance.of(address=address, user_agent=request.headers.get("user-agent", ""))


def routes(server: AuthServer, device: DeviceTrust | None = None) -> list[Route]:
    return [Route("/token", partial(token, server, device), methods=["POST"])]
