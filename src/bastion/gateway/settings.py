"""The ``[gateway]`` tables of ``bastion.toml``: upstreams, external issuers and routes.

Everything is checked when the file is loaded, so a route that names an unknown
upstream, issuer or path parameter never reaches the router. Routes are in
``gateway.route_settings``; this module holds upstreams, issuers and the references
between tables. See docs/gateway.md for every option with an example.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bastion.configtypes import (
    AnchoredPath,
    Duration,
    RefusedInProduction,
    Section,
    remote_plain_http,
)
from bastion.gateway.caller import BASTION
from bastion.gateway.route_settings import (
    GATEWAY_OWNED_HEADERS,
    HEADER_NAME,
    METHODS,
    NAME,
    PUBLIC,
    CorsSettings,
    InputSettings,
    ObjectSettings,
    ResponseSettings,
    RouteSettings,
    check_pointer,
    is_json_media_type,
    tuple_of_str,
)
from bastion.guards.settings import BreakerSettings, RetrySettings

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "BASTION",
    "GATEWAY_OWNED_HEADERS",
    "METHODS",
    "NAME",
    "PUBLIC",
    "CorsSettings",
    "CredentialSettings",
    "GatewaySettings",
    "InputSettings",
    "IssuerSettings",
    "ObjectSettings",
    "ResponseSettings",
    "RouteSettings",
    "UpstreamSettings",
    "check_pointer",
    "is_json_media_type",
]

# Algorithms an external issuer may use; "none" and HMAC are never accepted, because a
# shared secret would let anyone holding it mint tokens (RFC 8725 §3.1, §3.2).
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
)
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,127}$")


def _check_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^/?#@\s]+(/[^?#\s]*)?", value):
        raise ValueError("must be an http(s) URL without query, fragment or userinfo")
    return value.rstrip("/")


class CredentialSettings(Section):
    """What the upstream receives instead of the app's token (docs/gateway.md)."""

    type: Literal["token_exchange", "static", "client_credentials", "none"] = "token_exchange"
    # token_exchange: the internal token's audience (default: the upstream's URL).
    audience: str | None = None
    lifetime: Duration = 60.0
    # static: a header whose value is read from an environment variable (at start) or a
    # file (again whenever it changes, and on SIGHUP).
    header: str = "authorization"
    prefix: str = ""
    # static: the header's value; client_credentials: the client secret.
    env: str | None = None
    file: AnchoredPath | None = None
    # client_credentials: an access token from the upstream's own authorization server
    # (RFC 6749 §4.4), renewed before it expires.
    # Plain HTTP would carry the client secret across the network in clear.
    token_url: Annotated[
        str | None,
        RefusedInProduction(remote_plain_http, "the upstream's token endpoint must be https"),
    ] = None
    client_id: str | None = None
    scope: str | None = None
    resource: str | None = None
    auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        value = value.lower()
        if not HEADER_NAME.match(value):
            raise ValueError("not an HTTP header name")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise ValueError("prefix cannot hold control characters")
        return value

    @field_validator("token_url", "resource")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @model_validator(mode="after")
    def _source(self) -> CredentialSettings:
        if not 1 <= self.lifetime <= 60:
            raise ValueError("an internal token lives between 1 and 60 seconds")
        secret = self.type in ("static", "client_credentials")
        if secret:
            if (self.env is None) == (self.file is None):
                raise ValueError(f"a {self.type} credential names exactly one of env or file")
            if self.env is not None and not _ENV_NAME.match(self.env):
                raise ValueError("env must be an upper-case environment variable name")
        elif self.env is not None or self.file is not None:
            raise ValueError("env and file belong to a static or client_credentials credential")
        oauth = {"token_url", "client_id", "scope", "resource", "auth_method"}
        if self.type == "client_credentials":
            if self.token_url is None or not self.client_id:
                raise ValueError("a client_credentials credential needs token_url and client_id")
            if {"header", "prefix"} & self.model_fields_set:
                raise ValueError("a client_credentials token is sent as Authorization: Bearer")
        elif oauth & self.model_fields_set:
            raise ValueError(
                f"{sorted(oauth & self.model_fields_set)} belong to client_credentials"
            )
        return self

    @property
    def sent_header(self) -> str | None:
        """The request header this credential fills, if it is not an internal token."""
        if self.type == "static":
            return self.header
        return "authorization" if self.type == "client_credentials" else None


class UpstreamSettings(Section):
    name: str = Field(pattern=NAME)
    # Plain HTTP would carry internal tokens and injected credentials in clear.
    url: Annotated[
        str,
        RefusedInProduction(
            remote_plain_http, "plain HTTP to a remote upstream; use https (or a local sidecar)"
        ),
    ]
    connect_timeout: Duration = 2.0
    read_timeout: Duration = 10.0
    total_timeout: Duration = 30.0
    max_connections: int = Field(100, ge=1, le=10_000)
    max_response_bytes: int = Field(10 * 1_048_576, ge=1024)
    tls_client_cert: AnchoredPath | None = None
    tls_client_key: AnchoredPath | None = None
    tls_ca_file: AnchoredPath | None = None
    credential: CredentialSettings = CredentialSettings()
    retries: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)

    @model_validator(mode="after")
    def _limits(self) -> UpstreamSettings:
        if min(self.connect_timeout, self.read_timeout, self.total_timeout) <= 0:
            raise ValueError("upstream timeouts must be positive")
        if (self.tls_client_cert is None) != (self.tls_client_key is None):
            raise ValueError("tls_client_cert and tls_client_key must be set together")
        for path in (self.tls_client_cert, self.tls_client_key, self.tls_ca_file):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file not found: {path}")
        return self

    @property
    def timeouts_declared(self) -> bool:
        return {"connect_timeout", "read_timeout", "total_timeout"} <= self.model_fields_set

    @property
    def token_audience(self) -> str:
        return self.credential.audience or self.url


class IssuerSettings(Section):
    """An external authorization server whose access tokens some routes accept."""

    name: str = Field(pattern=NAME)
    issuer: str
    # Whoever can alter the key set in transit can mint that issuer's tokens.
    jwks_uri: Annotated[
        str, RefusedInProduction(remote_plain_http, "the JWKS must be fetched over https")
    ]
    audience: tuple[str, ...] = Field(min_length=1)
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    # JWT "typ" values accepted; RFC 9068 says at+jwt, some issuers send JWT or none ("").
    token_types: tuple[str, ...] = ("at+jwt", "application/at+jwt")
    client_id_claim: str = "client_id"
    jwks_max_age: Duration = 300.0
    jwks_min_refresh_interval: Duration = 30.0
    jwks_timeout: Duration = 5.0

    @field_validator("audience", mode="before")
    @classmethod
    def _audience(cls, value: object) -> object:
        return tuple_of_str(value)

    @field_validator("issuer", "jwks_uri")
    @classmethod
    def _urls(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        refused = [alg for alg in value if alg not in ASYMMETRIC_ALGORITHMS]
        if refused or not value:
            raise ValueError(f"algorithms must be a non-empty subset of {ASYMMETRIC_ALGORITHMS}")
        return value


class GatewaySettings(Section):
    prefix: str = "/api"
    # Audience a Bastion access token must carry (default: oauth.default_audience, else
    # the issuer), so tokens minted for other resources are not accepted here.
    audience: str | None = None
    # The client named in internal tokens (RFC 8693 §4.1 "act" names the app).
    client_id: str = "bastion-gateway"
    # The origin apps reach the gateway at, as a DPoP proof's htu names it (RFC 9449
    # §4.3); by default the issuer's origin (Bastion serves both).
    public_url: str | None = None
    token_cache_size: int = Field(10_000, ge=0, le=1_000_000)
    upstreams: tuple[UpstreamSettings, ...] = ()
    issuers: tuple[IssuerSettings, ...] = ()
    routes: tuple[RouteSettings, ...] = ()

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", value):
            raise ValueError("public_url is an origin such as https://api.example.com")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value):
            raise ValueError("prefix is a path such as /api (no trailing slash)")
        return value

    @model_validator(mode="after")
    def _references(self) -> GatewaySettings:
        upstreams = [u.name for u in self.upstreams]
        issuers = [i.name for i in self.issuers]
        labels = [r.label for r in self.routes]
        for kind, names in (("upstream", upstreams), ("issuer", issuers), ("route", labels)):
            if len(names) != len(set(names)):
                raise ValueError(f"{kind} names must be unique")
        if {BASTION, PUBLIC} & set(issuers):
            raise ValueError('"bastion" and "public" are reserved issuer names')
        for route in self.routes:
            if route.upstream not in upstreams:
                raise ValueError(f"route {route.label}: no upstream named {route.upstream!r}")
            unknown = set(route.auth or ()) - {BASTION, PUBLIC, *issuers}
            if unknown:
                raise ValueError(f"route {route.label}: unknown issuer(s) {sorted(unknown)}")
            credential = self.upstream(route.upstream).credential
            if credential.sent_header in route.forward_headers:
                raise ValueError(
                    f"route {route.label}: {credential.sent_header} carries the upstream's "
                    "credential and cannot be forwarded from the app"
                )
        return self

    def upstream(self, name: str) -> UpstreamSettings:
        return next(u for u in self.upstreams if u.name == name)
