"""``POST /register`` with a device attestation in place of an initial access token
(``[device].attested_registration``; docs/device-trust.md#attestation-gated-registration).

The request is RFC 7591 client metadata plus ``software_id`` (the declared client this
is an installation of), ``device_attestation`` (``installations.parse_attestation``) and
a DPoP proof (RFC 9449 §4) for this endpoint whose key becomes the installation's. The
steps, cheapest and side-effect free first:

1. the metadata: the installation's client is derived from the declared app client,
   never wider (``installations.installation_client``);
2. the DPoP proof, checked and used up;
3. the attestation, verified by the device-trust service over ``challenge "." jkt``,
   which consumes the challenge and records the installation;
4. the client, created with a registration access token (RFC 7592) and linked to the
   device record.

Refusals are RFC 7591 §3.2.2 errors. Metadata beyond the app client's is
``invalid_client_metadata`` (``invalid_redirect_uri`` for a redirect URI). An
attestation the device-trust service refuses (wrong app, replayed challenge, a key
another installation holds, an installation already registered) is
``unapproved_software_statement``: the attestation stands where a software statement
would, it is well formed (else ``invalid_client_metadata``), and this server does not
accept it; one code for every such reason, so the device learns nothing about which
check failed (the reason goes to the audit trail). When the attestation cannot be
judged (Google or Apple trust data unavailable), or hot state or the device store cannot
be reached (the challenge cannot be checked), registration fails closed: 503 with RFC
6749-style error JSON, ``{"error": "temporarily_unavailable", "error_description": ...}``,
and ``Retry-After``, as the token endpoint answers (never problem details: this is an
OAuth endpoint), because registration has no weaker answer (no step-up) to fall back to.

Two registrations of one installation (one DPoP key) racing make one client: steps 3
and 4 run for one key at a time (``_register_once``).
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bastion.audit import AuditEvent, Outcome
from bastion.authserver.installations import (
    DEVICE_ATTESTATION,
    DeviceAttestation,
    installation_app,
    installation_client,
    parse_attestation,
    software_version,
)
from bastion.authserver.registration import new_client_id, token_hash
from bastion.authserver.server import AuthServer
from bastion.device.records import Device
from bastion.device.service import DeviceTrust
from bastion.errors import (
    DeviceRefused,
    DeviceUnverifiable,
    DpopError,
    OAuthError,
    StoreUnavailable,
)
from bastion.oauth.clients import Client
from bastion.oauth.dpop import DpopProof
from bastion.web.oauth import registration_schema as schema
from bastion.web.oauth.common import oauth_error, oauth_json

RETRY_AFTER = "30"
# A registration in progress holds its DPoP key this long at most (a worker that dies
# mid-way frees it then).
CLAIM_FOR = 60.0
_CLAIM_PREFIX = "registration-key:"
_UNAPPROVED = "the device attestation is not accepted"
_UNAVAILABLE = "the device attestation cannot be verified now; try again later"


def wanted(server: AuthServer, trust: DeviceTrust | None, body: dict[str, Any]) -> bool:
    """Whether this registration goes the attested way. Without the setting the member
    is ignored, as RFC 7591 §2 asks of metadata a server does not understand, and the
    request needs an initial access token or a software statement as before."""
    return (
        trust is not None
        and server.settings.device.attested_registration
        and body.get(DEVICE_ATTESTATION) is not None
    )


async def register_installation(
    server: AuthServer, trust: DeviceTrust, request: Request, body: dict[str, Any]
) -> Response:
    software_id = body.get("software_id")
    try:
        attestation = parse_attestation(body[DEVICE_ATTESTATION])
        app = await _app(server, trust, software_id, attestation.platform)
        metadata = schema.metadata(
            schema.ClientMetadata,
            {k: v for k, v in body.items() if k not in (DEVICE_ATTESTATION, "software_id")},
        )
        version = software_version(metadata)
        client = installation_client(app, metadata, client_id=new_client_id())
    except OAuthError as exc:
        _refused(server, exc.description, software_id=software_id)
        return oauth_error(exc)
    try:
        proof = await server.dpop.check(
            request.headers.getlist("dpop"),
            method="POST",
            uri=f"{server.settings.issuer}{schema.REGISTER.path}",
            actor=f"client:{app.client_id}",
            nonce=server.dpop.nonce_required(app),
        )
    except DpopError as exc:
        # As at the token endpoint (RFC 9449 §5.1, §8): 400 with the DPoP error code, and
        # the nonce to use when that is what was missing.
        headers = (
            {"dpop-nonce": server.dpop.current_nonce()} if exc.error == "use_dpop_nonce" else {}
        )
        return oauth_json({"error": exc.error, "error_description": exc.description}, 400, headers)
    except StoreUnavailable as exc:
        return _store_down(server, app, exc)
    try:
        return await _register_once(server, trust, attestation, proof.jkt, version, client, app)
    except StoreUnavailable as exc:
        return _store_down(server, app, exc)


def _store_down(server: AuthServer, app: Client, exc: StoreUnavailable) -> Response:
    """Hot state or the device store down: the proof's replay, the challenge or the
    installation cannot be checked or recorded. An OAuth endpoint answers with RFC 6749
    error JSON (§5.2's shape; the code as §4.1.2.1 names it), never problem details."""
    _audit(
        server,
        "oauth.registration.unavailable",
        Outcome.FAILURE,
        software_id=app.client_id,
        reason=f"{exc.store}_unavailable",
    )
    return _unavailable()


async def _register_once(
    server: AuthServer,
    trust: DeviceTrust,
    attestation: DeviceAttestation,
    jkt: str,
    version: str | None,
    client: Client,
    app: Client,
) -> Response:
    """Steps 3 and 4 for one DPoP key at a time. The key is claimed in hot state first
    (``set_if_absent``: one writer on every worker), so of two registrations of one
    installation racing, one proceeds and the other is refused before its attestation
    could replace the first one's device record; the one that follows later finds the
    installation registered."""
    claim = f"{_CLAIM_PREFIX}{jkt}"
    if not await trust.hot.set_if_absent(claim, b"1", ttl=CLAIM_FOR):
        _refused(server, "registration_in_progress", software_id=app.client_id)
        return oauth_error(OAuthError("unapproved_software_statement", _UNAPPROVED))
    try:
        bound = await trust.devices.by_jkt(jkt)
        if bound is not None and not bound.revoked and await _registered_before(server, bound):
            # One installation, one client: its DPoP key already names a registered one.
            _refused(server, "already_registered", software_id=app.client_id)
            return oauth_error(OAuthError("unapproved_software_statement", _UNAPPROVED))
        try:
            device = await _attest(trust, app.client_id, attestation, jkt, version)
        except DeviceRefused as exc:
            _refused(server, exc.reason, software_id=app.client_id)
            return oauth_error(OAuthError("unapproved_software_statement", _UNAPPROVED))
        except DeviceUnverifiable as exc:
            _audit(
                server,
                "oauth.registration.unavailable",
                Outcome.FAILURE,
                software_id=app.client_id,
                reason=exc.reason,
            )
            return _unavailable()
        if await _registered_before(server, device):
            _refused(server, "already_registered", software_id=app.client_id)
            return oauth_error(OAuthError("unapproved_software_statement", _UNAPPROVED))
        return await _create(server, trust, client, app, device)
    finally:
        with contextlib.suppress(StoreUnavailable):
            # Hot state gone meanwhile: the claim lapses on its own (CLAIM_FOR).
            await trust.hot.delete(claim)


def _unavailable() -> Response:
    return oauth_json(
        {"error": "temporarily_unavailable", "error_description": _UNAVAILABLE},
        503,
        {"retry-after": RETRY_AFTER},
    )


async def check_installation_key(
    trust: DeviceTrust | None, client: Client, proof: DpopProof | None
) -> None:
    """At the token endpoint: an installation's client gets tokens only with its
    installation's DPoP key, while that installation is not revoked. Without a secret,
    that key is what tells the installation from anyone who read its ``client_id``;
    other clients pass untouched. ``invalid_client`` (RFC 6749 §5.2) with 400: the
    client sent no Authorization header to answer a challenge for."""
    if installation_app(client) is None:
        return
    device = None if trust is None or proof is None else await trust.devices.by_jkt(proof.jkt)
    if device is None or device.revoked or device.registered_client_id != client.client_id:
        raise OAuthError(
            "invalid_client", "this client's tokens are bound to its installation's key"
        )


async def _app(
    server: AuthServer, trust: DeviceTrust, software_id: object, platform: str
) -> Client:
    """The declared client ``software_id`` names, if it declares an app on ``platform``."""
    if not isinstance(software_id, str) or not software_id:
        raise OAuthError("invalid_client_metadata", "software_id names the app's declared client")
    declared = trust.apps.get(software_id)
    app = await server.clients.get(software_id)
    on_platform = declared is not None and (
        declared.apple if platform == "apple" else declared.android
    )
    if not on_platform or app is None or not app.enabled or app.source != "config":
        raise OAuthError(
            "invalid_client_metadata",
            f"software_id names no declared app for {platform} installations",
        )
    return app


async def _attest(
    trust: DeviceTrust,
    client_id: str,
    attestation: DeviceAttestation,
    jkt: str,
    version: str | None,
) -> Device:
    if attestation.platform == "apple":
        assert attestation.key_id is not None
        assert attestation.attestation_object is not None
        return await trust.attest_apple(
            client_id=client_id,
            key_id=attestation.key_id,
            attestation_object=attestation.attestation_object,
            challenge=attestation.challenge,
            dpop_jkt=jkt,
            app_version=version,
        )
    assert attestation.integrity_token is not None
    return await trust.attest_google(
        client_id=client_id,
        token=attestation.integrity_token,
        challenge=attestation.challenge,
        dpop_jkt=jkt,
        app_version=version,
    )


async def _registered_before(server: AuthServer, device: Device) -> bool:
    """The installation already has a client that still exists (one deleted through
    RFC 7592 §2.3 may be registered anew)."""
    if device.registered_client_id is None:
        return False
    return await server.clients.get(device.registered_client_id) is not None


async def _create(
    server: AuthServer, trust: DeviceTrust, client: Client, app: Client, device: Device
) -> Response:
    access_token = secrets.token_urlsafe(32)
    now = server.grants.clock.now()
    await server.clients.store.create(client, now, registration_token_hash=token_hash(access_token))
    await trust.devices.set_registered_client(device.device_id, client.client_id)
    _audit(
        server,
        "oauth.registration.created",
        Outcome.SUCCESS,
        client_id=client.client_id,
        software_id=app.client_id,
        device_id=device.device_id,
        platform=device.platform,
    )
    metadata = client.to_metadata()
    registered = schema.Registration.model_validate(
        {
            "client_id": client.client_id,
            "client_name": metadata["client_name"],
            "redirect_uris": metadata["redirect_uris"],
            "token_endpoint_auth_method": client.auth_method,
            "grant_types": metadata["grant_types"],
            "response_types": metadata["response_types"],
            "scope": metadata["scope"],
            "dpop_bound_access_tokens": True,
            "software_id": app.client_id,
            "software_version": device.app_version,
            "registration_client_uri": f"{server.settings.issuer}/register/{client.client_id}",
            "client_id_issued_at": int(now),
            "registration_access_token": access_token,
            **client.branding.to_metadata(),
        }
    )
    return oauth_json(registered.model_dump(mode="json", exclude_none=True), 201)


def _refused(server: AuthServer, reason: str, *, software_id: object) -> None:
    _audit(
        server,
        "oauth.registration.refused",
        Outcome.DENIED,
        reason=reason,
        software_id=software_id[:128] if isinstance(software_id, str) else None,
        attested=True,
    )


def _audit(server: AuthServer, action: str, outcome: Outcome, **details: object) -> None:
    server.grants.audit.emit(AuditEvent(action, outcome, actor="registration", details=details))
