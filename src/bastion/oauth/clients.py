"""Clients and the rules their registration must satisfy (RFC 7591 §2, RFC 8252 §8.4).

Two kinds, both with explicit allowlists of scopes, grant types, resources (audiences)
and redirect URIs, so that nothing a client can ask for is implied:

* ``public``: a native app. No secret (one shipped in an app is not a secret, RFC 8252
  §8.5); authorization code with PKCE and refresh tokens only.
* ``confidential``: a backend. Authenticates with ``private_key_jwt`` (RFC 7523) or
  ``client_secret_basic``; may also use client credentials and token exchange.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from bastion.errors import ClientMetadataError, RedirectUriError
from bastion.oauth.redirects import validate

AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"
CLIENT_CREDENTIALS = "client_credentials"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
GRANT_TYPES = frozenset({AUTHORIZATION_CODE, REFRESH_TOKEN, CLIENT_CREDENTIALS, TOKEN_EXCHANGE})
PUBLIC_GRANTS = frozenset({AUTHORIZATION_CODE, REFRESH_TOKEN})

ClientType = Literal["public", "confidential"]
AuthMethod = Literal["none", "client_secret_basic", "private_key_jwt"]
AUTH_POLICIES = ("password", "mfa", "passkey")
CLIENT_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_RESOURCE = re.compile(r"[a-z][a-z0-9+.\-]*:[^\s#]+")


def hash_secret(secret: str) -> str:
    """SHA-256 of a client secret.

    Bastion generates secrets with 256 bits of randomness, so a slow password hash adds
    nothing against guessing and would cost tens of milliseconds per token request.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


BRANDING_URIS = ("logo_uri", "client_uri", "policy_uri", "tos_uri")
# Every branding member, by its RFC 7591 name (accent_color is Bastion's extension).
BRANDING = (*BRANDING_URIS, "accent_color")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?")


@dataclass(frozen=True)
class Branding:
    """How an app presents itself on sign-in and consent pages.

    ``logo_uri``, ``client_uri``, ``policy_uri`` and ``tos_uri`` are RFC 7591 §2
    metadata; ``accent_color`` (``#rrggbb``) is Bastion's. Each URI is https, so that a
    page never loads or links to plain-HTTP content in the sign-in flow.
    """

    logo_uri: str | None = None
    client_uri: str | None = None
    policy_uri: str | None = None
    tos_uri: str | None = None
    accent_color: str | None = None

    def to_metadata(self) -> dict[str, str]:
        return {name: value for name, value in vars(self).items() if value}

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any] | None) -> Branding:
        values = values or {}
        return cls(**{name: values.get(name) for name in BRANDING})


MIN_ACCENT_CONTRAST = 3.0


def luminance(hex_color: str) -> float:
    """Relative luminance (WCAG 2.2, "relative luminance") of ``#rrggbb``."""
    channels = []
    for i in (1, 3, 5):
        c = int(hex_color[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    red, green, blue = channels
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(a: str, b: str) -> float:
    """WCAG 2.2 contrast ratio of two ``#rrggbb`` colours, from 1 to 21."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def https_origin(url: str) -> str | None:
    """``https://host[:port]`` of an https URL whose host is a plain DNS name or IPv4
    address, else None. Safe to put in a CSP source list (no spaces, quotes or ';')."""
    parsed = urlsplit(url)
    try:
        port = parsed.port
    except ValueError:
        return None
    host = parsed.hostname or ""
    if parsed.scheme != "https" or not _HOST.fullmatch(host) or not _public_name(host):
        return None
    return f"https://{host}" + (f":{port}" if port is not None else "")


def _public_name(host: str) -> bool:
    """A DNS name with a dot whose last label is not numeric: not localhost, a single
    label or an IP address in any spelling (``2130706433``, ``0x7f.1``)."""
    labels = host.rstrip(".").split(".")
    return len(labels) > 1 and not labels[-1].isdigit() and not labels[-1].startswith("0x")


def check_branding(branding: Branding) -> None:
    """Raise ``ClientMetadataError`` for a branding URI or colour that cannot be shown."""
    for name in BRANDING_URIS:
        value = getattr(branding, name)
        if value is None:
            continue
        parsed = urlsplit(value)
        if (
            parsed.scheme != "https"
            or https_origin(value) is None
            or parsed.username is not None
            or parsed.password is not None
            or parsed.fragment
            or len(value) > 2000
            or any(c.isspace() or ord(c) < 0x20 for c in value)
        ):
            raise ClientMetadataError(name, "use an https URL without credentials or fragment")
    if branding.accent_color is not None:
        if not _COLOR.fullmatch(branding.accent_color):
            raise ClientMetadataError("accent_color", "use a colour like #1f5fbf")
        # WCAG 2.2 §1.4.11: a button must stand out from the white card it sits on, so an
        # app cannot make "Allow" and "Deny" look alike.
        if contrast(branding.accent_color, "#ffffff") < MIN_ACCENT_CONTRAST:
            raise ClientMetadataError(
                "accent_color", "too light: it needs a contrast of 3:1 against white"
            )


@dataclass(frozen=True)
class Client:
    client_id: str
    client_type: ClientType
    auth_method: AuthMethod
    redirect_uris: tuple[str, ...] = ()
    scopes: frozenset[str] = frozenset()
    grant_types: frozenset[str] = frozenset({AUTHORIZATION_CODE, REFRESH_TOKEN})
    resources: frozenset[str] = frozenset()
    name: str = ""
    require_pushed_authorization_requests: bool = False
    # RFC 9449 §5.2: every token request must carry a DPoP proof.
    dpop_bound_access_tokens: bool = False
    # RFC 9449 §8: every proof must carry the server's current nonce.
    require_dpop_nonce: bool = False
    secret_hash: str | None = field(default=None, repr=False)
    jwks: Mapping[str, Any] | None = None
    enabled: bool = True
    source: Literal["config", "cli", "registration"] = "cli"
    # A resource server allowed to introspect tokens whose audience is in ``resources``.
    may_introspect: bool = False
    # Sign-in policy for this app's users: "password", "mfa" or "passkey".
    auth_policy: str = "password"
    # Token exchange: audiences of the resource servers this client operates. A subject
    # token issued for one of them (or issued to this client) may be exchanged; this is
    # not ``resources``, the audiences the client may ask for (RFC 8693 §5).
    exchange_subject_audiences: frozenset[str] = frozenset()
    # Whether a subject token that already names an actor (``act``) may be exchanged.
    exchange_delegation_chains: bool = False
    # Registration metadata a software statement fixed: the ceiling for RFC 7592 updates.
    statement_values: Mapping[str, Any] | None = None
    branding: Branding = Branding()

    @property
    def is_public(self) -> bool:
        return self.client_type == "public"

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def to_metadata(self) -> dict[str, Any]:
        """The public view (RFC 7591 §3.2.1 names), without secrets."""
        return {
            "client_id": self.client_id,
            "client_name": self.name,
            "client_type": self.client_type,
            "token_endpoint_auth_method": self.auth_method,
            "redirect_uris": list(self.redirect_uris),
            "grant_types": sorted(self.grant_types),
            "response_types": ["code"] if AUTHORIZATION_CODE in self.grant_types else [],
            "scope": " ".join(sorted(self.scopes)),
            "resources": sorted(self.resources),
            "require_pushed_authorization_requests": self.require_pushed_authorization_requests,
            "dpop_bound_access_tokens": self.dpop_bound_access_tokens,
            "require_dpop_nonce": self.require_dpop_nonce,
            "jwks": dict(self.jwks) if self.jwks else None,
            "enabled": self.enabled,
            "source": self.source,
            "introspection": self.may_introspect,
            "auth_policy": self.auth_policy,
            "exchange_subject_audiences": sorted(self.exchange_subject_audiences),
            "exchange_delegation_chains": self.exchange_delegation_chains,
            "statement_values": dict(self.statement_values) if self.statement_values else None,
            **self.branding.to_metadata(),
        }


def check_client(client: Client) -> Client:
    """Raise ``ClientMetadataError`` unless ``client`` is a coherent, safe registration."""
    if not CLIENT_ID.fullmatch(client.client_id):
        raise ClientMetadataError("client_id", "use 1-128 letters, digits, '.', '_' or '-'")
    unknown = client.grant_types - GRANT_TYPES
    if unknown:
        raise ClientMetadataError("grant_types", f"unsupported: {', '.join(sorted(unknown))}")
    if not client.grant_types:
        raise ClientMetadataError("grant_types", "at least one grant type is needed")
    if client.is_public:
        if client.auth_method != "none":
            raise ClientMetadataError(
                "token_endpoint_auth_method", "public clients do not authenticate ('none')"
            )
        if not client.grant_types <= PUBLIC_GRANTS:
            raise ClientMetadataError(
                "grant_types", "public clients may use authorization_code and refresh_token only"
            )
        if client.secret_hash is not None:
            raise ClientMetadataError("client_secret", "public clients have no secret")
    else:
        if client.auth_method == "none":
            raise ClientMetadataError(
                "token_endpoint_auth_method",
                "confidential clients use private_key_jwt or client_secret_basic",
            )
        if client.auth_method == "private_key_jwt" and not _has_keys(client.jwks):
            raise ClientMetadataError("jwks", "private_key_jwt needs the client's public keys")
        if client.auth_method == "client_secret_basic" and client.secret_hash is None:
            raise ClientMetadataError("client_secret", "client_secret_basic needs a secret")
    if client.auth_policy not in AUTH_POLICIES:
        raise ClientMetadataError("auth_policy", "use password, mfa or passkey")
    if client.may_introspect and client.is_public:
        raise ClientMetadataError("introspection", "public clients may not introspect")
    if AUTHORIZATION_CODE in client.grant_types and not client.redirect_uris:
        raise ClientMetadataError("redirect_uris", "authorization_code needs a redirect URI")
    if REFRESH_TOKEN in client.grant_types and AUTHORIZATION_CODE not in client.grant_types:
        raise ClientMetadataError("grant_types", "refresh_token comes with authorization_code")
    for uri in client.redirect_uris:
        try:
            validate(uri)
        except RedirectUriError as exc:
            raise ClientMetadataError(
                "redirect_uris", f"{exc}", error="invalid_redirect_uri"
            ) from None
    check_branding(client.branding)
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in client.name):
        # Bidi overrides would reverse the text around the name on Bastion's pages.
        raise ClientMetadataError("client_name", "control and format characters are refused")
    for scope in client.scopes:
        if not _SCOPE.fullmatch(scope):
            raise ClientMetadataError("scope", "scopes are printable ASCII without spaces")
    for name, values in (
        ("resources", client.resources),
        ("exchange_subject_audiences", client.exchange_subject_audiences),
    ):
        if not all(_RESOURCE.fullmatch(value) for value in values):
            raise ClientMetadataError(
                name, "each entry is an absolute URI without a fragment (RFC 8707 §2)"
            )
    return client


def _has_keys(jwks: Mapping[str, Any] | None) -> bool:
    keys = jwks.get("keys") if jwks else None
    return isinstance(keys, list) and bool(keys)
