"""Dynamic registration's contract: client metadata (RFC 7591 §2), the answers (§3.2,
RFC 7592 §3) and the operations, from which ``/openapi/registration.json`` is made.

The models check the JSON type of each member; what a value may be (redirect URI rules,
grant ceilings, what a software statement fixes) is the registration core's to decide,
because it applies to the statement's claims too. A request that does not fit the model
is refused as RFC 7591 §3.2.2 says, with the same error body the core gives for that
member (``invalid_client_metadata``, or ``invalid_software_statement``), never with a
framework's own validation answer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.errors import OAuthError
from bastion.oauth.clients import BRANDING, AuthMethod
from bastion.web.openapi import BEARER, Answer, Api, Operation, problem


class JwkSet(BaseModel):
    """A JWK Set (RFC 7517 §5) of the client's public EC, OKP or RSA keys."""

    model_config = ConfigDict(extra="allow", strict=True)

    keys: list[dict[str, Any]]


class ClientMetadata(BaseModel):
    """Client metadata (RFC 7591 §2) as far as Bastion reads it; other members are
    ignored, as §2 asks."""

    model_config = ConfigDict(extra="allow", strict=True)

    redirect_uris: list[str] | None = Field(
        None, description="exact redirect URIs (private-use scheme, claimed https, loopback)"
    )
    token_endpoint_auth_method: str | None = Field(
        None,
        description="none, private_key_jwt (the default with jwks) or client_secret_basic",
    )
    grant_types: list[str] | None = Field(
        None, description="authorization_code and refresh_token unless a statement allows more"
    )
    response_types: list[str] | None = Field(None, description='only ["code"]')
    client_name: str | None = None
    logo_uri: str | None = Field(None, description="https; shown on sign-in and consent")
    client_uri: str | None = Field(None, description="https; the way back on error pages")
    policy_uri: str | None = Field(None, description="https; linked from sign-in and consent")
    tos_uri: str | None = Field(None, description="https; linked from sign-in and consent")
    accent_color: str | None = Field(
        None, description="Bastion's extension: #rrggbb for the pages' primary buttons"
    )
    scope: str | None = Field(
        None, description="space-separated; within the default scopes or the statement's"
    )
    jwks: JwkSet | None = None
    jwks_uri: None = Field(None, description="not supported: send jwks")
    dpop_bound_access_tokens: bool | None = Field(
        None, description="RFC 9449 §5.2: every token request must carry a DPoP proof"
    )
    software_statement: str | None = Field(
        None, description="a JWT signed by the operator (RFC 7591 §2.3)"
    )
    software_id: str | None = Field(
        None,
        description=("with device_attestation: the declared client this is an installation of"),
    )
    software_version: str | None = Field(None, description="the app's version (RFC 7591 §2)")
    device_attestation: dict[str, Any] | None = Field(
        None,
        description=(
            "where [device].attested_registration is on, in place of the initial access "
            'token: {"platform": "apple", "key_id", "attestation_object", "challenge"} or '
            '{"platform": "google", "integrity_token", "challenge"}, made over '
            'challenge "." the thumbprint of the DPoP key that signs this request\'s proof'
        ),
    )


class ClientUpdate(ClientMetadata):
    """RFC 7592 §2.2: the full metadata that replaces what the client may change."""

    client_id: str | None = Field(None, description="if sent, the client's own id")


_LISTS = frozenset({"redirect_uris", "grant_types", "response_types"})
# Reported in the order the registration core checks members, so a request with several
# faults is answered about the same one.
_ORDER = (
    "software_statement",
    "device_attestation",
    "software_id",
    "software_version",
    "client_id",
    "token_endpoint_auth_method",
    "jwks_uri",
    "jwks",
    "grant_types",
    "response_types",
    "scope",
    "client_name",
    *BRANDING,
    "dpop_bound_access_tokens",
    "redirect_uris",
)


def _refusal(where: tuple[int | str, ...]) -> OAuthError:
    """The error the registration core gives for the member at ``where``."""
    name = str(where[0])
    if name == "software_statement":
        return OAuthError("invalid_software_statement", "must be a JWT string")
    if name == "client_id":
        return OAuthError("invalid_client_metadata", "client_id cannot change")
    if name == "jwks_uri":
        return OAuthError("invalid_client_metadata", "jwks_uri is not supported; send jwks")
    if name == "jwks":
        if where[1:2] == ("keys",) and len(where) > 2:
            return OAuthError(
                "invalid_client_metadata", "jwks must hold public EC, OKP or RSA keys only"
            )
        return OAuthError("invalid_client_metadata", "jwks must be a JWK Set")
    if name == "device_attestation":
        return OAuthError("invalid_client_metadata", "device_attestation must be an object")
    if name == "dpop_bound_access_tokens":
        return OAuthError("invalid_client_metadata", f"{name} must be a boolean")
    kind = "a list of strings" if name in _LISTS else "a string"
    return OAuthError("invalid_client_metadata", f"{name} must be {kind}")


def metadata(model: type[ClientMetadata], body: dict[str, Any]) -> dict[str, Any]:
    """``body`` validated by ``model``, as the mapping the registration core reads (members
    that were not sent stay absent); ``OAuthError`` (RFC 7591 §3.2.2) otherwise."""
    try:
        return model.model_validate(body).model_dump(exclude_unset=True)
    except ValidationError as exc:
        places = sorted((e["loc"] for e in exc.errors()), key=lambda loc: _ORDER.index(str(loc[0])))
        raise _refusal(places[0]) from None


class ClientInformation(BaseModel):
    """What Bastion holds for a registered client (RFC 7592 §3)."""

    client_id: str
    client_name: str
    logo_uri: str | None = None
    client_uri: str | None = None
    policy_uri: str | None = None
    tos_uri: str | None = None
    accent_color: str | None = None
    redirect_uris: list[str]
    token_endpoint_auth_method: AuthMethod
    grant_types: list[str]
    response_types: list[str]
    scope: str
    jwks: JwkSet | None = Field(None, description="present when the client has keys")
    dpop_bound_access_tokens: bool
    software_id: str | None = Field(None, description="an installation's app (its client)")
    software_version: str | None = None
    registration_client_uri: str = Field(description="where to read, update or delete it")


class Registration(ClientInformation):
    """The answer to a registration (RFC 7591 §3.2.1)."""

    client_id_issued_at: int
    registration_access_token: str = Field(
        description="the bearer token for registration_client_uri (RFC 7592)"
    )
    client_secret: str | None = Field(None, description="only with client_secret_basic")
    client_secret_expires_at: int | None = Field(None, description="0: it does not expire")


class RegistrationError(BaseModel):
    """RFC 7591 §3.2.2."""

    error: Literal[
        "invalid_redirect_uri",
        "invalid_client_metadata",
        "invalid_software_statement",
        "unapproved_software_statement",
    ]
    error_description: str


class TokenError(BaseModel):
    """RFC 6750 §3.1: the request's bearer token is missing or not valid here."""

    error: Literal["invalid_token"]
    error_description: str


class Unavailable(BaseModel):
    """The registration cannot be judged now (RFC 6749 §4.1.2.1's code): try again."""

    error: Literal["temporarily_unavailable"]
    error_description: str


_REFUSED = {400: Answer("the metadata cannot be registered", RegistrationError)}
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="bastion", error="invalid_token"'}
_LIMITS = {413: problem("the body is over the server's limit")}
_CLIENT_ID = {"client_id": "the id the registration answered with"}

REGISTER = Operation(
    "POST",
    "/register",
    "registerClient",
    "Register a client (RFC 7591)",
    {
        201: Answer("registered", Registration),
        **_REFUSED,
        401: Answer(
            "neither the initial access token nor a software statement",
            TokenError,
            headers=_CHALLENGE,
        ),
        **_LIMITS,
        429: problem("too many registrations from this address", {"Retry-After": "seconds"}),
        503: Answer(
            "a device attestation that cannot be verified now",
            Unavailable,
            headers={"Retry-After": "seconds"},
        ),
    },
    body=ClientMetadata,
    description=(
        "Needs the initial access token as a bearer token, or a software statement "
        "signed by the operator in the metadata, or (with [device].attested_registration) "
        "a device attestation with software_id and a DPoP proof."
    ),
    security=("initialAccessToken",),
    anonymous=True,
)
_UNKNOWN = {
    401: Answer(
        "unknown client, or not its registration access token (the same answer, RFC 7592 §2)",
        TokenError,
        headers=_CHALLENGE,
    )
}
READ = Operation(
    "GET",
    "/register/{client_id}",
    "readClient",
    "Read a registered client (RFC 7592 §2.1)",
    {200: Answer("the client", ClientInformation), **_UNKNOWN},
    security=("registrationAccessToken",),
    parameters=_CLIENT_ID,
)
UPDATE = Operation(
    "PUT",
    "/register/{client_id}",
    "updateClient",
    "Replace a registered client's metadata (RFC 7592 §2.2)",
    {200: Answer("the client", ClientInformation), **_REFUSED, **_UNKNOWN, **_LIMITS},
    body=ClientUpdate,
    description="Scopes and grant types can only narrow; what a statement fixed stays.",
    security=("registrationAccessToken",),
    parameters=_CLIENT_ID,
)
DELETE = Operation(
    "DELETE",
    "/register/{client_id}",
    "deleteClient",
    "Delete a registered client and revoke its tokens (RFC 7592 §2.3)",
    {204: Answer("deleted"), **_UNKNOWN},
    security=("registrationAccessToken",),
    parameters=_CLIENT_ID,
)

REGISTRATION_API = Api(
    title="Bastion dynamic client registration",
    version="1",
    description=(
        "Dynamic client registration (RFC 7591) and management (RFC 7592), so each app "
        "install can have its own client. Errors are RFC 7591 §3.2.2 or RFC 6750 JSON."
    ),
    operations=(REGISTER, READ, UPDATE, DELETE),
    security_schemes={
        "initialAccessToken": BEARER | {"description": "BASTION_REGISTRATION_TOKEN"},
        "registrationAccessToken": BEARER
        | {"description": "registration_access_token from the registration's answer"},
    },
)
