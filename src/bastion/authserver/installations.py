"""Attestation-gated registration (RFC 7591): what a per-installation client may be.

With ``[device].attested_registration``, an app installation registers its own client
without an initial access token and without any secret shipped in the app: it sends a
verified platform attestation (App Attest or Play Integrity) in the ``device_attestation``
member, names the declared client it is an installation of in ``software_id`` (§2) and
proves possession of its DPoP key. The attestation plays the part of a software
statement (§2.3): evidence, from the platform rather than the operator, of which
software is registering. This module is the pure part: reading ``device_attestation``
and deriving the installation's client from the declared app client, never wider.

The installation's client is public (``token_endpoint_auth_method`` ``none``: nothing
secret to ship), DPoP-bound (RFC 9449 §5.2), and has the app client's redirect URIs,
scopes, grant types (the code flow only) and resources, or a subset the request names;
anything beyond is refused. Its name, branding and sign-in policy are the app client's,
never the request's. What it got is stored as its ``statement_values``, the ceiling of
every later RFC 7592 update, as a software statement's values are.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bastion.errors import ClientMetadataError, OAuthError
from bastion.oauth.clients import (
    AUTHORIZATION_CODE,
    BRANDING,
    REFRESH_TOKEN,
    Client,
    check_client,
)

__all__ = [
    "DEVICE_ATTESTATION",
    "DeviceAttestation",
    "installation_app",
    "installation_client",
    "parse_attestation",
    "software_version",
]

DEVICE_ATTESTATION = "device_attestation"
CODE_FLOW = frozenset({AUTHORIZATION_CODE, REFRESH_TOKEN})
# The same bounds as the device endpoints: an attestation object is at most 16 KiB (about
# 22,000 base64 characters), a Play Integrity token 16 KiB, a challenge 64 characters.
MAX_ATTESTATION_OBJECT = 24_000
MAX_INTEGRITY_TOKEN = 16_384
MAX_CHALLENGE = 64
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{43}=?$")
_VERSION = re.compile(r"^[A-Za-z0-9._+-]{1,64}$")
_MEMBERS = {
    "apple": {"platform", "key_id", "attestation_object", "challenge"},
    "google": {"platform", "integrity_token", "challenge"},
}


@dataclass(frozen=True)
class DeviceAttestation:
    """A ``device_attestation`` member, well formed but not yet verified."""

    platform: Literal["apple", "google"]
    challenge: str
    # App Attest: base64url of the 32-byte key id, and the CBOR attestation object.
    key_id: str | None = None
    attestation_object: bytes | None = None
    # Play Integrity: the token (Standard, or classic).
    integrity_token: str | None = None


def _refuse(description: str) -> OAuthError:
    return OAuthError("invalid_client_metadata", f"device_attestation: {description}")


def _string(value: object, name: str, limit: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit or not value.isascii():
        raise _refuse(f"{name} must be a string of at most {limit} characters")
    return value


def parse_attestation(value: object) -> DeviceAttestation:
    """The member's parts, or ``invalid_client_metadata`` naming what is wrong with its
    shape (its verification is the device-trust service's)::

        {"platform": "apple", "key_id": ..., "attestation_object": ..., "challenge": ...}
        {"platform": "google", "integrity_token": ..., "challenge": ...}

    ``key_id`` is base64url (43 characters); ``attestation_object`` base64, either
    alphabet, padding optional."""
    if not isinstance(value, Mapping):
        raise _refuse("must be an object")
    platform = value.get("platform")
    if platform not in _MEMBERS:
        raise _refuse('platform must be "apple" or "google"')
    if set(value) != _MEMBERS[platform]:
        raise _refuse(f"{platform} needs exactly {', '.join(sorted(_MEMBERS[platform]))}")
    challenge = _string(value["challenge"], "challenge", MAX_CHALLENGE)
    if platform == "google":
        token = _string(value["integrity_token"], "integrity_token", MAX_INTEGRITY_TOKEN)
        return DeviceAttestation("google", challenge, integrity_token=token)
    key_id = _string(value["key_id"], "key_id", 64)
    if not _KEY_ID.match(key_id):
        raise _refuse("key_id must be base64url of 32 bytes")
    encoded = _string(value["attestation_object"], "attestation_object", MAX_ATTESTATION_OBJECT)
    text = encoded.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _refuse("attestation_object must be base64") from exc
    return DeviceAttestation("apple", challenge, key_id=key_id, attestation_object=raw)


def software_version(metadata: Mapping[str, Any]) -> str | None:
    """RFC 7591 §2 ``software_version``: the app's version, recorded on the device."""
    value = metadata.get("software_version")
    if value is None:
        return None
    if not isinstance(value, str) or not _VERSION.match(value):
        raise OAuthError("invalid_client_metadata", "software_version is not a version string")
    return value


def _listed(metadata: Mapping[str, Any], name: str) -> tuple[str, ...] | None:
    value = metadata.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise OAuthError("invalid_client_metadata", f"{name} must be a list of strings")
    return tuple(value)


def installation_client(app: Client, metadata: Mapping[str, Any], *, client_id: str) -> Client:
    """The client of one installation of ``app`` (see the module docstring), or the
    RFC 7591 §3.2.2 error: ``invalid_redirect_uri`` for a redirect URI the app client
    lacks, ``invalid_client_metadata`` for anything else beyond it or not allowed here."""
    method = metadata.get("token_endpoint_auth_method")
    if method not in (None, "none"):
        raise OAuthError(
            "invalid_client_metadata",
            "an installation's client is public: token_endpoint_auth_method is none",
        )
    for name in ("jwks", "jwks_uri", "software_statement"):
        if metadata.get(name) is not None:
            raise OAuthError(
                "invalid_client_metadata", f"{name} is not accepted with an attestation"
            )
    if metadata.get("dpop_bound_access_tokens") is False:
        raise OAuthError("invalid_client_metadata", "an installation's tokens are DPoP-bound")
    allowed_grants = app.grant_types & CODE_FLOW
    if AUTHORIZATION_CODE not in allowed_grants or not app.redirect_uris:
        raise OAuthError("invalid_client_metadata", "software_id names no app with a code flow")

    redirect_uris = _listed(metadata, "redirect_uris")
    if redirect_uris is None or not redirect_uris:
        redirect_uris = app.redirect_uris
    elif not set(redirect_uris) <= set(app.redirect_uris):
        raise OAuthError("invalid_redirect_uri", "a redirect URI the app's client does not have")
    grants = _listed(metadata, "grant_types")
    grant_types = frozenset(grants) if grants else allowed_grants
    if not grant_types <= allowed_grants:
        raise OAuthError("invalid_client_metadata", "a grant type the app's client does not have")
    if AUTHORIZATION_CODE not in grant_types:
        raise OAuthError("invalid_client_metadata", "an installation uses the code flow")
    response_types = _listed(metadata, "response_types")
    if response_types and set(response_types) != {"code"}:
        raise OAuthError("invalid_client_metadata", "only the code response type exists")
    scope = metadata.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise OAuthError("invalid_client_metadata", "scope must be a string")
    scopes = frozenset(scope.split()) if scope else app.scopes
    if not scopes <= app.scopes:
        raise OAuthError("invalid_client_metadata", "a scope the app's client does not have")

    client = Client(
        client_id=client_id,
        client_type="public",
        auth_method="none",
        redirect_uris=tuple(redirect_uris),
        scopes=scopes,
        grant_types=grant_types,
        resources=app.resources,
        name=app.name,
        require_pushed_authorization_requests=app.require_pushed_authorization_requests,
        dpop_bound_access_tokens=True,
        require_dpop_nonce=app.require_dpop_nonce,
        source="registration",
        auth_policy=app.auth_policy,
        branding=app.branding,
        statement_values=_ceiling(app, redirect_uris, scopes, grant_types),
    )
    try:
        return check_client(client)
    except ClientMetadataError as exc:
        raise OAuthError(exc.error, str(exc)) from exc


def installation_app(client: Client) -> str | None:
    """The declared app client an installation's client was registered for, or None for
    any other client. Only an attested registration fixes ``software_id``."""
    if client.source != "registration" or not client.statement_values:
        return None
    app = client.statement_values.get("software_id")
    return app if isinstance(app, str) else None


def _ceiling(
    app: Client,
    redirect_uris: tuple[str, ...],
    scopes: frozenset[str],
    grant_types: frozenset[str],
) -> dict[str, Any]:
    """What the registration got, fixed as a software statement's values are
    (``registration.BOUND_LISTS`` may narrow on update, the rest stays): an update
    through the registration access token can never make the installation wider than
    the app, nor rename it, nor rebrand it, nor turn DPoP off."""
    return {
        "software_id": app.client_id,
        "scope": " ".join(sorted(scopes)),
        "redirect_uris": list(redirect_uris),
        "grant_types": sorted(grant_types),
        "resources": sorted(app.resources),
        "client_name": app.name,
        "token_endpoint_auth_method": "none",
        "jwks": None,
        "dpop_bound_access_tokens": True,
        # Every branding member, the ones the app lacks fixed as absent (None): the
        # sign-in page shows an installation's client with its app's logo and links,
        # and an update must not add a logo or a policy link the app never had.
        **{name: getattr(app.branding, name) for name in BRANDING},
    }
