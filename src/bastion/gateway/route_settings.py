"""The ``[[gateway.routes]]`` tables: who may call a route and what it checks and forwards.

Each route is checked on its own when the file is loaded; ``GatewaySettings`` then
checks what routes name across tables (upstreams, issuers). See docs/gateway.md.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from bastion.accounts.levels import rank
from bastion.configtypes import AnchoredPath, Duration, Section
from bastion.device.settings import PolicySettings
from bastion.gateway.caller import BASTION
from bastion.gateway.templates import PathTemplate
from bastion.guards.settings import IdempotencySettings, LimitSettings, PaginationSettings

# Names of upstreams, issuers and object kinds.
NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
PUBLIC = "public"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# Request headers an app can never pass through: credentials, framing, hop-by-hop, and
# the ones the gateway sets itself (a client copy would arrive first and win upstream).
GATEWAY_OWNED_HEADERS = frozenset(
    {
        "authorization",
        # The app's DPoP proof (RFC 9449) is for the gateway only: an upstream that got it
        # with the token could not use it (it names the gateway's URL and is used up),
        # but it is the app's credential all the same, like Authorization.
        "dpop",
        # The app's App Attest assertion or Play Integrity token over this request is
        # checked and used up here (its challenge is one-time); upstreams never see it.
        "device-assertion",
        "cookie",
        "host",
        "content-length",
        "transfer-encoding",
        "te",
        "trailer",
        "connection",
        "keep-alive",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "x-request-id",
    }
)
_POINTER = re.compile(r"^(/([^/~]|~[01])*)*$")
HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")


def tuple_of_str(value: object) -> object:
    """A single string in the file stands for a list of one."""
    return (value,) if isinstance(value, str) else value


def is_json_media_type(media: str) -> bool:
    """``application/json`` or a structured ``+json`` type (RFC 6839 §3.1)."""
    kind, _, subtype = media.partition("/")
    return bool(kind) and (media == "application/json" or subtype.endswith("+json"))


def check_pointer(value: str) -> str:
    """A JSON pointer (RFC 6901); ``*`` as a whole token stands for every item."""
    if not _POINTER.match(value):
        raise ValueError(f"{value!r} is not a JSON pointer (RFC 6901), e.g. '/id'")
    return value


class ObjectSettings(Section):
    """Object-level authorization (BOLA): who may touch which object (docs/gateway.md)."""

    owner_claim: str = "sub"
    # A path or query parameter that must equal a claim: { user_id = "sub" }.
    param_claims: dict[str, str] = Field(default_factory=dict)
    # The ownership registry: this route's `id_param` must name an object of kind `owned`
    # recorded as the caller's.
    owned: str | None = Field(None, pattern=NAME)
    id_param: str | None = None
    # On a successful create, record the caller as owner of the new object's id, found at
    # `id_from`: "path:<param>", "body:<pointer>" or "answer:<pointer>" (the default,
    # "answer:/id"; `id_pointer` is the older spelling of "answer:<pointer>").
    records: str | None = Field(None, pattern=NAME)
    id_from: str | None = None
    id_pointer: str = "/id"
    # Body fields that must equal a claim: { "/username" = "sub" }. "refuse" answers 404
    # when they differ (or are missing); "set" writes the claim's value before forwarding.
    body_claims: dict[str, str] = Field(default_factory=dict)
    body_claims_mode: Literal["refuse", "set"] = "refuse"
    # The upstream's answer names its owner at this pointer; withheld unless it is the caller.
    response_owner: str | None = None
    # Ask the upstream who owns the object before forwarding (GET of this path template).
    lookup: str | None = None
    lookup_owner: str = "/owner"

    @field_validator("id_pointer", "response_owner", "lookup_owner")
    @classmethod
    def _pointers(cls, value: str | None) -> str | None:
        return None if value is None else check_pointer(value)

    @field_validator("body_claims")
    @classmethod
    def _body_pointers(cls, value: dict[str, str]) -> dict[str, str]:
        for pointer in value:
            if not check_pointer(pointer) or "*" in pointer.split("/"):
                raise ValueError(f"{pointer!r} must point at one field, e.g. '/username'")
        return value

    @model_validator(mode="after")
    def _id_source(self) -> ObjectSettings:
        if self.id_from is not None:
            if "id_pointer" in self.model_fields_set:
                raise ValueError("give id_from or id_pointer, not both")
            source, _, where = self.id_from.partition(":")
            if source not in ("path", "body", "answer") or not where:
                raise ValueError(
                    'id_from is "path:<param>", "body:<pointer>" or "answer:<pointer>"'
                )
            if source != "path":
                check_pointer(where)
        if self.id_from is not None and self.records is None:
            raise ValueError("id_from says where a create finds its id: it needs records")
        return self

    @property
    def id_source(self) -> tuple[str, str]:
        """Where a create finds the id to record: ("path"|"body"|"answer", param or pointer)."""
        if self.id_from is None:
            return ("answer", self.id_pointer)
        source, _, where = self.id_from.partition(":")
        return (source, where)

    @property
    def needs_subject(self) -> bool:
        return bool(
            self.param_claims
            or self.body_claims
            or self.owned
            or self.records
            or self.response_owner
            or self.lookup
        )


class InputSettings(Section):
    """Validation of what the app sends (JSON Schema 2020-12, or an OpenAPI operation)."""

    # Each schema inline, or in a JSON or YAML file (which may $ref other local files).
    body: dict[str, Any] | None = None
    body_file: AnchoredPath | None = None
    query: dict[str, Any] | None = None
    query_file: AnchoredPath | None = None
    path: dict[str, Any] | None = None
    path_file: AnchoredPath | None = None
    # An OpenAPI 3.0 or 3.1 document (JSON or YAML) and the operation this route is.
    openapi: AnchoredPath | None = None
    operation: str | None = None
    content_types: tuple[str, ...] = ("application/json",)
    # Unknown properties are refused unless a schema says otherwise (mass assignment).
    allow_unknown_properties: bool = False
    max_depth: int = Field(32, ge=1, le=256)
    max_array_items: int = Field(10_000, ge=1)

    @field_validator("content_types")
    @classmethod
    def _json_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        lowered = tuple(t.strip().lower() for t in value)
        if not lowered or any(not is_json_media_type(t) for t in lowered):
            raise ValueError("content_types are JSON media types (application/json, */*+json)")
        return lowered

    @model_validator(mode="after")
    def _sources(self) -> InputSettings:
        pairs = (
            ("body", self.body, self.body_file),
            ("query", self.query, self.query_file),
            ("path", self.path, self.path_file),
        )
        for name, inline, file in pairs:
            if inline is not None and file is not None:
                raise ValueError(f"give {name} or {name}_file, not both")
        if (self.openapi is None) != (self.operation is None):
            raise ValueError("openapi and operation go together")
        if self.openapi is not None and any(i is not None or f for _, i, f in pairs):
            raise ValueError("an OpenAPI operation replaces body, query and path schemas")
        for path in (self.body_file, self.query_file, self.path_file, self.openapi):
            if path is not None and not path.is_file():
                raise ValueError(f"schema file not found: {path}")
        return self


class ResponseSettings(Section):
    # JSON pointers of the fields the app may see; everything else is stripped.
    allow: tuple[str, ...] | None = None

    @field_validator("allow")
    @classmethod
    def _pointers(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(check_pointer(p) for p in value)


class CorsSettings(Section):
    origins: tuple[str, ...] = Field(min_length=1)
    headers: tuple[str, ...] = ("authorization", "content-type", "idempotency-key")
    expose: tuple[str, ...] = ()
    credentials: bool = False
    max_age: Duration = 600.0

    @field_validator("origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            # A wildcard would hand every site the user's data (no "*" for APIs with auth).
            if not re.fullmatch(r"https?://[^/?#@\s*]+", origin):
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return value


class RouteSettings(Section):
    name: str | None = None
    methods: tuple[str, ...]
    path: str
    upstream: str
    upstream_path: str | None = None
    # Who may call: "bastion", names of [[gateway.issuers]], or "public" alone. Required,
    # so that a route can never be public by omission.
    auth: tuple[str, ...] | None = None
    scopes: tuple[str, ...] = ()
    any_scopes: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    roles_claim: str = "roles"
    claims: dict[str, tuple[str | int | bool, ...]] = Field(default_factory=dict)
    clients: tuple[str, ...] = ()
    acr: str | None = None
    max_auth_age: Duration | None = None
    # Only sender-constrained tokens (RFC 9449 DPoP): a bearer token is refused.
    require_dpop: bool = False
    upstream_scopes: tuple[str, ...] | None = None
    forward_headers: tuple[str, ...] = ()
    max_body_bytes: int | None = Field(None, ge=0)
    objects: ObjectSettings = ObjectSettings()
    input: InputSettings | None = None
    response: ResponseSettings = ResponseSettings()
    cors: CorsSettings | None = None
    limits: tuple[LimitSettings, ...] = ()
    idempotency: IdempotencySettings | None = None
    pagination: PaginationSettings | None = None
    # While the upstream's breaker is open (or it fails): answer a GET with the last good
    # answer this process saw for the same caller and URL, marked stale.
    fallback: Literal["none", "stale"] = "none"
    stale_for: Duration = 300.0
    device: PolicySettings | None = None

    @field_validator("methods", "auth", "scopes", "any_scopes", mode="before")
    @classmethod
    def _strings(cls, value: object) -> object:
        return tuple_of_str(value)

    @field_validator("claims", mode="before")
    @classmethod
    def _claim_values(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: v if isinstance(v, list | tuple) else (v,) for k, v in value.items()}
        return value

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        upper = tuple(m.upper() for m in value)
        if not upper or any(m not in METHODS for m in upper):
            raise ValueError(f"methods must be a non-empty subset of {METHODS}")
        return upper

    @field_validator("forward_headers")
    @classmethod
    def _headers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        lowered = tuple(h.lower() for h in value)
        if any(not HEADER_NAME.match(h) for h in lowered):
            raise ValueError("not an HTTP header name")
        if owned := sorted(set(lowered) & GATEWAY_OWNED_HEADERS):
            raise ValueError(f"never forwarded from the app (the gateway owns them): {owned}")
        return lowered

    @model_validator(mode="after")
    def _consistent(self) -> RouteSettings:
        if self.auth is None or not self.auth:
            raise ValueError(
                'auth is required: name who may call ("bastion", an issuer) or say "public"'
            )
        if PUBLIC in self.auth and len(self.auth) > 1:
            raise ValueError('"public" cannot be combined with issuers')
        public = self.auth == (PUBLIC,)
        has_conditions = self.scopes or self.any_scopes or self.roles or self.claims or self.clients
        if public and (has_conditions or self.acr or self.max_auth_age is not None):
            raise ValueError("a public route has no caller to check scopes, claims or acr on")
        if public and self.objects.needs_subject:
            raise ValueError("object-level rules need an authenticated caller")
        if self.acr is not None and rank(self.acr) == 0:
            raise ValueError(f"acr must be one of the levels Bastion issues, not {self.acr!r}")
        template = PathTemplate.parse(self.path)
        target = PathTemplate.parse(self.upstream_path or self.path)
        missing = set(target.params) - set(template.params)
        if missing:
            raise ValueError(f"upstream_path uses parameters not in path: {sorted(missing)}")
        objects = self.objects
        if objects.owned is not None:
            id_param = objects.id_param or (template.params[-1] if template.params else None)
            if id_param not in template.params:
                raise ValueError("objects.owned needs id_param naming a path parameter")
        if objects.lookup is not None:
            lookup = PathTemplate.parse(objects.lookup)
            if not set(lookup.params) <= set(template.params):
                raise ValueError("objects.lookup may only use the route's path parameters")
        if objects.records is not None and not set(self.methods) <= {"POST", "PUT"}:
            raise ValueError("objects.records belongs on a create route (POST or PUT)")
        source, where = objects.id_source
        if objects.records is not None and source == "path" and where not in template.params:
            raise ValueError(f"objects.id_from names {where!r}, which is not a path parameter")
        if objects.body_claims and not set(self.methods) <= {"POST", "PUT", "PATCH"}:
            raise ValueError("objects.body_claims needs a route that takes a body")
        if (objects.body_claims or source == "body") and self.input is None:
            # The body must be parsed as the upstream will parse it: JSON of a declared
            # media type, validated, then forwarded as exactly what was checked.
            raise ValueError("objects.body_claims and id_from = body:... need an input schema")
        if self.idempotency is not None and not set(self.methods) <= {"POST", "PATCH"}:
            raise ValueError("idempotency keys are for POST and PATCH routes")
        if (self.pagination is not None or self.fallback != "none") and self.methods != ("GET",):
            raise ValueError("pagination and stale fallbacks are for GET routes")
        names = [limit.name for limit in self.limits]
        if len(names) != len(set(names)):
            raise ValueError("limit names must be unique within a route")
        if self.is_public and any(
            part in ("user", "client", "tier") for limit in self.limits for part in limit.by
        ):
            raise ValueError("a public route has no user, client or tier to limit by")
        if self.is_public and self.require_dpop:
            raise ValueError("a public route has no token to constrain (require_dpop)")
        if self.is_public and self.device is not None:
            raise ValueError("a public route has no token to tie to a device (device)")
        if objects.response_owner is not None and "HEAD" in self.methods:
            # A HEAD answer has no body to find the owner in: it would leak existence.
            raise ValueError("objects.response_owner cannot protect HEAD")
        if (self.acr is not None or self.max_auth_age is not None) and self.auth != (BASTION,):
            # Levels are Bastion's: another issuer could claim any acr value it likes.
            raise ValueError('acr and max_auth_age need auth = "bastion" alone')
        if objects.needs_subject and len(self.auth) > 1:
            # Subjects of two issuers share no namespace: "u1" of one is not "u1" of the other.
            raise ValueError("object-level rules need a route that accepts a single issuer")
        return self

    @property
    def label(self) -> str:
        return self.name or f"{'|'.join(self.methods)} {self.path}"

    @property
    def is_public(self) -> bool:
        return self.auth == (PUBLIC,)
