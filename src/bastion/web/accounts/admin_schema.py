"""The admin API's contract: request and answer models and its operations.

The handlers in ``admin`` validate bodies and build answers with these models, and the
OpenAPI document served at ``/openapi/admin.json`` is generated from them. A body that
does not fit its model is a 400 problem whose ``errors`` lists JSON Pointers (RFC 6901)
to the members at fault, never their values.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from bastion.accounts.levels import Policy
from bastion.errors import ProblemError
from bastion.web.openapi import BEARER, Answer, Api, Operation, problem


class AdminBody(BaseModel):
    """A request body; ``invalid`` is the problem's detail when it does not validate."""

    invalid: ClassVar[str]


class NewUser(AdminBody):
    invalid: ClassVar[str] = "username and password are required strings"

    username: StrictStr = Field(description="1-200 characters, no surrounding spaces")
    password: StrictStr = Field(description="checked against the password policy")


class PolicyChange(AdminBody):
    invalid: ClassVar[str] = "policy is password, mfa or passkey"

    policy: Policy = Field(description="what every sign-in of the user must prove")


class RecoveryLinkRequest(AdminBody):
    invalid: ClassVar[str] = "reset_mfa is a boolean"

    reset_mfa: StrictBool = Field(
        False, description="also remove the user's second factors when the link is redeemed"
    )


Body = TypeVar("Body", bound=AdminBody)


def validated(model: type[Body], body: dict[str, Any]) -> Body:
    """``body`` as ``model``, or a 400 problem pointing at the members at fault."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        pointers = sorted({f"/{error['loc'][0]}" for error in exc.errors() if error["loc"]})
        raise ProblemError(model.invalid, extensions={"errors": pointers}) from None


class User(BaseModel):
    user_id: str = Field(description="opaque and permanent; the address of the user")
    username: str
    enabled: bool
    created_at: float = Field(description="seconds since the epoch")
    tokens_valid_after: float = Field(
        description="tokens issued before this moment (epoch seconds) are refused"
    )
    auth_policy: Policy


class UserList(BaseModel):
    users: list[User]


class UserDetail(User):
    consents: dict[str, list[str]] = Field(description="client id -> scopes the user approved")


class Enabled(BaseModel):
    ok: Literal[True]
    enabled: bool


class Revoked(BaseModel):
    """What stopped working: browser sessions, refresh-token families, access tokens."""

    ok: Literal[True]
    sessions: int
    families: int
    access_tokens: int


class PolicySet(BaseModel):
    ok: Literal[True]
    auth_policy: Policy


class RecoveryLink(BaseModel):
    ok: Literal[True]
    link: str = Field(description="one-time link to give the user; it is shown only here")


class DeviceQuery(AdminBody):
    """The filters of a device listing, from the query string."""

    invalid: ClassVar[str] = "limit is 1-1000 and include_revoked a boolean"

    user_id: str | None = Field(None, description="only devices this user used")
    client_id: str | None = Field(
        None, description="only devices of this client (the app, or a client it registered)"
    )
    include_revoked: bool = Field(False, description="include revoked devices")
    limit: int = Field(100, ge=1, le=1000, description="at most this many")


class DeviceRevocationRequest(AdminBody):
    invalid: ClassVar[str] = "reason is a string of 1-200 characters without control characters"

    reason: StrictStr = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="why, for the device record and the audit trail",
    )


class Device(BaseModel):
    """An attested app installation; key material is never shown."""

    device_id: str = Field(description="opaque and permanent; the address of the device")
    platform: Literal["ios", "android"]
    client_id: str = Field(description="the app the installation attested for")
    registered_client_id: str | None = Field(
        description="the per-installation client it registered (RFC 7591), if any"
    )
    level: Literal["none", "basic", "device", "strong"] = Field(
        description="the attestation level its platform vouched for"
    )
    app_version: str | None
    key_id: str | None = Field(description="App Attest key id (iOS)")
    environment: str | None = Field(description="App Attest environment (iOS)")
    verdict: dict[str, Any] | None = Field(
        description="summary of the last Play Integrity verdict that passed (Android)"
    )
    counter: int = Field(description="the last App Attest assertion counter accepted")
    dpop_jkt: str | None = Field(description="RFC 7638 thumbprint of its DPoP key")
    encryption_key: bool = Field(description="whether it registered an encryption key")
    users: list[str] = Field(description="user ids seen on it, first seen first")
    first_seen: float = Field(description="seconds since the epoch")
    last_seen: float = Field(description="seconds since the epoch")
    attested_at: float = Field(description="seconds since the epoch")
    revoked_at: float | None = Field(description="seconds since the epoch; null while it stands")
    revoked_reason: str | None


class DeviceList(BaseModel):
    devices: list[Device] = Field(description="most recently seen first")


class DeviceRevoked(BaseModel):
    """The device is revoked; its refresh-token families (and their access tokens) end."""

    ok: Literal[True]
    device_id: str
    already_revoked: bool = Field(
        description="revoked before this call, which only finished what was left"
    )
    families: int = Field(description="refresh-token families this call revoked")


class ValidationProblem(BaseModel):
    """Problem details (RFC 9457) for a body that is not what the operation takes."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    correlation_id: str | None = None
    errors: list[str] | None = Field(
        None, description="JSON Pointers (RFC 6901) to the members at fault"
    )


_CHALLENGE = {"WWW-Authenticate": 'RFC 6750 challenge: Bearer realm="bastion-admin", error=...'}
_AUTH = {
    401: problem("no token, or not a token for the admin API (invalid_token)", _CHALLENGE),
    403: problem("the token lacks the admin scope (insufficient_scope)", _CHALLENGE),
}
_NO_USER = {404: problem("no such user")}
_NO_DEVICE = {404: problem("no such device")}
_QUERY = {
    400: Answer(
        "a query parameter is not what the operation takes",
        ValidationProblem,
        "application/problem+json",
    )
}
_BODY = {
    400: Answer(
        "the body is not JSON, or not what the operation takes",
        ValidationProblem,
        "application/problem+json",
    ),
    413: problem("the body is over the server's limit"),
    415: problem("the body is not application/json"),
}


def _operation(
    method: str,
    path: str,
    operation_id: str,
    summary: str,
    answers: dict[int, Answer],
    body: type[AdminBody] | None = None,
    query: type[BaseModel] | None = None,
) -> Operation:
    """An admin operation: admin token required, a user or device in the path may not
    exist."""
    user, device = "{user_id}" in path, "{device_id}" in path
    missing = _NO_USER if user else _NO_DEVICE if device else {}
    invalid = _BODY if body else _QUERY if query else {}
    return Operation(
        method,
        path,
        operation_id,
        summary,
        {**answers, **_AUTH, **missing, **invalid},
        body=body,
        security=("adminToken",),
        parameters=(
            {"user_id": "the user's opaque id"}
            if user
            else {"device_id": "the device's opaque id"}
            if device
            else {}
        ),
        query=query,
    )


USERS = "/admin/users"
USER = "/admin/users/{user_id}"
_OK = "done"

LIST_USERS = _operation("GET", USERS, "listUsers", "List users", {200: Answer(_OK, UserList)})
CREATE_USER = _operation(
    "POST",
    USERS,
    "createUser",
    "Create a user",
    {
        201: Answer("created", User),
        409: problem("a user with that username exists"),
        422: problem("the password is too weak, or the username is not acceptable"),
    },
    NewUser,
)
SHOW_USER = _operation(
    "GET", USER, "showUser", "Show a user with its consents", {200: Answer(_OK, UserDetail)}
)
DELETE_USER = _operation(
    "DELETE",
    USER,
    "deleteUser",
    "Delete a user after revoking its sessions and tokens",
    {204: Answer("deleted")},
)
DISABLE_USER = _operation(
    "POST",
    f"{USER}/disable",
    "disableUser",
    "Disable a user and revoke its sessions and tokens",
    {200: Answer(_OK, Enabled)},
)
ENABLE_USER = _operation(
    "POST", f"{USER}/enable", "enableUser", "Enable a user", {200: Answer(_OK, Enabled)}
)
REVOKE_SESSIONS = _operation(
    "POST",
    f"{USER}/revoke-sessions",
    "revokeSessions",
    "Revoke every session and token of a user (a lost phone)",
    {200: Answer(_OK, Revoked)},
)
SET_POLICY = _operation(
    "POST",
    f"{USER}/policy",
    "setPolicy",
    "Set what every sign-in of a user must prove",
    {
        200: Answer(_OK, PolicySet),
        422: problem("the user lacks the factor the policy needs"),
    },
    PolicyChange,
)
RECOVERY_LINK = _operation(
    "POST",
    f"{USER}/recovery-link",
    "issueRecoveryLink",
    "Issue a one-time recovery link",
    {200: Answer(_OK, RecoveryLink)},
    RecoveryLinkRequest,
)

DEVICES = "/admin/devices"
DEVICE = "/admin/devices/{device_id}"

LIST_DEVICES = _operation(
    "GET",
    DEVICES,
    "listDevices",
    "List attested devices, most recently seen first",
    {200: Answer(_OK, DeviceList)},
    query=DeviceQuery,
)
SHOW_DEVICE = _operation("GET", DEVICE, "showDevice", "Show a device", {200: Answer(_OK, Device)})
REVOKE_DEVICE = _operation(
    "POST",
    f"{DEVICE}/revoke",
    "revokeDevice",
    "Revoke a device and every token it holds (a stolen phone, a cloned app)",
    {200: Answer(_OK, DeviceRevoked)},
    DeviceRevocationRequest,
)

ADMIN_API = Api(
    title="Bastion admin API",
    version="1",
    description=(
        "The operations of `bastion users` and `bastion devices` over HTTP. Callers "
        "present a Bastion access token obtained with client credentials (no user in "
        "it) whose scope holds the "
        "admin scope (default `bastion:admin`) and whose audience is `<issuer>/admin` "
        "(RFC 8707). Errors are problem details (RFC 9457)."
    ),
    operations=(
        LIST_USERS,
        CREATE_USER,
        SHOW_USER,
        DELETE_USER,
        DISABLE_USER,
        ENABLE_USER,
        REVOKE_SESSIONS,
        SET_POLICY,
        RECOVERY_LINK,
        LIST_DEVICES,
        SHOW_DEVICE,
        REVOKE_DEVICE,
    ),
    security_schemes={"adminToken": BEARER},
)
