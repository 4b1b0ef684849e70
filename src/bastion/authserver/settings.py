"""The ``[oauth]`` tables: token lifetimes, declared clients and dynamic registration.

See docs/configuration.md#oauth and docs/oauth.md. Declared clients are checked by the
same rules as CLI and registered clients when the app is built (``authserver.registry``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bastion.configtypes import AnchoredPath, Duration, Section
from bastion.device.settings import ClientDeviceSettings
from bastion.oauth.dpop import SUPPORTED_ALGORITHMS


class ClientSettings(Section):
    """A client declared in the file (see docs/oauth.md). Its secret, if any, is given as a
    SHA-256 hash: the secret itself never needs to be in the file."""

    client_id: str
    type: Literal["public", "confidential"] = "public"
    name: str = ""
    auth_method: Literal["none", "client_secret_basic", "private_key_jwt"] | None = None
    redirect_uris: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ("openid",)
    grant_types: tuple[str, ...] | None = None
    resources: tuple[str, ...] = ()
    require_pushed_authorization_requests: bool = False
    # RFC 9449 §5.2: token requests without a DPoP proof are refused.
    dpop_bound_access_tokens: bool = False
    # RFC 9449 §8: this client must use server nonces in its proofs.
    require_dpop_nonce: bool = False
    secret_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    jwks_file: AnchoredPath | None = None
    introspection: bool = False
    auth_policy: Literal["password", "mfa", "passkey"] = "password"
    exchange_subject_audiences: tuple[str, ...] = ()
    exchange_delegation_chains: bool = False
    # Shown on sign-in and consent pages (docs/pages.md): RFC 7591 §2 names, https only.
    logo_uri: str | None = None
    client_uri: str | None = None
    policy_uri: str | None = None
    tos_uri: str | None = None
    accent_color: str | None = None
    # Which app this client is on each platform (docs/device-trust.md).
    device: ClientDeviceSettings | None = None


class DpopSettings(Section):
    """Sender-constrained tokens (RFC 9449): see docs/dpop.md."""

    # Proof algorithms accepted: asymmetric only (RFC 9449 §4.3), advertised in discovery.
    algorithms: tuple[str, ...] = SUPPORTED_ALGORITHMS
    # How old a proof's iat may be, and how far ahead of this server's clock (RFC 9449
    # §11.1): a short window bounds how long a proof captured in transit stays usable.
    proof_max_age: Duration = 60.0
    proof_leeway: Duration = 5.0
    # Every public client must send proofs (tokens bound to the device's key). Off by
    # default so existing apps keep working; `bastion check` warns in production.
    require_for_public_clients: bool = False
    # Ask every client for server nonces (RFC 9449 §8); a client can also ask alone.
    require_nonce: bool = False
    # A nonce is handed out for this long and accepted for up to twice as long.
    nonce_lifetime: Duration = 120.0

    @model_validator(mode="after")
    def _check(self) -> DpopSettings:
        unknown = set(self.algorithms) - set(SUPPORTED_ALGORITHMS)
        if unknown or not self.algorithms:
            raise ValueError(
                "algorithms must be a non-empty list from " + ", ".join(SUPPORTED_ALGORITHMS)
            )
        if not 1 <= self.proof_max_age <= 600:
            raise ValueError("proof_max_age must be between 1 second and 10 minutes")
        if self.proof_leeway > 60:
            raise ValueError("proof_leeway above 60 s would accept proofs made far ahead")
        if not 10 <= self.nonce_lifetime <= 3600:
            raise ValueError("nonce_lifetime must be between 10 seconds and 1 hour")
        return self


class RegistrationSettings(Section):
    enabled: bool = False
    software_statement_jwks_file: AnchoredPath | None = None
    default_scopes: tuple[str, ...] = ("openid",)


class OAuthSettings(Section):
    access_token_lifetime: Duration = 300.0
    id_token_lifetime: Duration = 300.0
    refresh_idle_lifetime: Duration = 14 * 86_400.0
    refresh_absolute_lifetime: Duration = 90 * 86_400.0
    # Off by default: inside a grace window the token just rotated out still works, so a
    # thief racing the app is not detected (RFC 9700 §4.14.2). Opt-in, same instance only.
    refresh_grace: Duration = 0.0
    # How long an authorization code can be redeemed. RFC 6749 §4.1.2: short-lived, and a
    # maximum of 10 minutes is RECOMMENDED, so longer values are refused.
    code_lifetime: Duration = 60.0
    par_lifetime: Duration = 60.0
    login_timeout: Duration = 600.0
    session_idle: Duration = 3_600.0
    session_absolute: Duration = 12 * 3_600.0
    default_audience: str | None = None
    clients: tuple[ClientSettings, ...] = ()
    registration: RegistrationSettings = RegistrationSettings()
    dpop: DpopSettings = DpopSettings()
    # What each scope lets an app do, in words people read on the consent and account
    # pages: one text for every language, or a table of language -> text (docs/pages.md).
    scope_descriptions: dict[str, str | dict[str, str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _lifetimes(self) -> OAuthSettings:
        if not 1 <= self.access_token_lifetime <= 3600:
            raise ValueError("access_token_lifetime must be between 1 second and 1 hour")
        if not 1 <= self.code_lifetime <= 600:
            raise ValueError(
                "code_lifetime must be between 1 second and 10 minutes (RFC 6749 §4.1.2)"
            )
        if self.refresh_grace > 60:
            raise ValueError("refresh_grace above 60 s would let a stolen token fork a family")
        if self.refresh_idle_lifetime > self.refresh_absolute_lifetime:
            raise ValueError("refresh_idle_lifetime cannot exceed refresh_absolute_lifetime")
        ids = [c.client_id for c in self.clients]
        if len(ids) != len(set(ids)):
            raise ValueError("client_id values must be unique")
        return self
