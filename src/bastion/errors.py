"""Bastion's exception tree.

Every error Bastion raises on purpose derives from ``BastionError`` and is declared
here, so that the whole tree is read in one place; third-party errors are translated
at the boundary where they occur and chained with ``from``::

    BastionError
    ├── ConfigError                 invalid configuration; carries every ConfigProblem
    ├── InvalidValue                a value a rule refuses (also a ValueError, so that
    │   │                           pydantic reports it as a field error)
    │   ├── ClientMetadataError     client metadata (RFC 7591 §2) that cannot be accepted
    │   ├── RedirectUriError        a redirect URI that cannot be registered
    │   ├── AccountRuleError        an account change the rules refuse
    │   ├── WeakPassword            a password the policy refuses
    │   ├── PasskeyError            a WebAuthn credential that does not verify
    │   ├── BadPath                 a request path no route can match safely
    │   └── DocumentError           an OpenAPI or schema document that cannot be read
    ├── StoreError
    │   ├── StoreUnavailable        a store (database, hot state) cannot be reached
    │   │   └── ConnectionLost      a database connection died under a statement
    │   ├── SchemaNotCurrent        the database schema is not at the code's revision
    │   ├── ClientExists            a client with that id already exists
    │   ├── DeviceKeyInUse          an App Attest key or DPoP key another device holds
    │   └── UserExists              a user with that username already exists
    ├── KeyRingError
    │   ├── MasterKeyError          master key missing, malformed, wrong or not the ring's
    │   └── KeyNotFound             no key with that id (also a NotFound)
    ├── NotFound                    no client, user or key by that name
    ├── ReadOnlyClient              a client declared in bastion.toml, changed elsewhere
    ├── ProblemError                an HTTP answer as RFC 9457 problem details (400)
    │   ├── InvalidInput            a request the gateway's validation refused (400)
    │   ├── Unauthenticated         no valid access token (401, RFC 6750 §3)
    │   ├── DpopRefused             a token or proof refused under DPoP (401, RFC 9449 §7.1)
    │   ├── SignInRequired          a page or its script needs a signed-in user (401)
    │   ├── Refusal                 refused by policy; ``reason`` is for the audit trail
    │   │   ├── Forbidden           scope, role, claim or client missing (403)
    │   │   ├── Hidden              refused as if it did not exist (404, BOLA)
    │   │   ├── StepUpRequired      authentication too weak or old (401, RFC 9470)
    │   │   └── DeviceRefused       a device attestation or assertion refused (403)
    │   ├── ResourceNotFound        no such resource (404)
    │   ├── RequestTimeout          a client that sends its request too slowly (408)
    │   ├── IdempotencyConflict     the same Idempotency-Key still in progress (409)
    │   │   └── IdempotencyOutcomeUnknown   its first use may or may not have happened
    │   ├── BodyTooLarge            request body over the configured limit (413)
    │   ├── UnsupportedMediaType    a body that is not of an accepted type (415)
    │   ├── IdempotencyMismatch     an Idempotency-Key reused for another request (422)
    │   ├── RateLimited             over a rate limit or quota (429)
    │   │   ├── QuotaExceeded       over a limit the client is told about
    │   │   └── AbnormalUsage       over a hidden limit
    │   ├── HeadersTooLarge         too many or too large header fields (431)
    │   ├── CircuitOpen             the upstream's circuit breaker is open (503)
    │   ├── DeviceUnverifiable      Apple's or Google's trust data cannot be had (503)
    │   └── UpstreamFailure         an upstream that failed or answered 5xx (502)
    │       └── GatewayTimeout      an upstream that did not answer in time (504)
    ├── AttestationError            an App Attest attestation or assertion that does not
    │                               verify; ``reason`` names the failed check
    ├── IntegrityError              a Play Integrity token or verdict refused; ``reason``
    │                               names the failed check
    ├── CallbackRefused             an authorization answer the demo app did not ask for
    ├── DpopError                   a DPoP proof refused (RFC 9449); ``reason`` is for the
    │                               audit trail, ``error`` the code for the wire
    └── OAuthError                  an OAuth error code (RFC 6749 §4.1.2.1, §5.2) for the wire
        └── UnsafeRedirect          shown on Bastion's page, never sent to a redirect URI

``ProblemError`` subclasses declare their status, title and type as class data; an
instance adds only what varies (``detail``, headers, extension members). Messages of
``StoreError`` and ``KeyRingError`` are for operators (logs, CLI); the HTTP layer never
sends them to clients. ``ProblemError`` and ``InvalidValue`` messages are safe to show
to whoever sent the request or value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# The RFC 6750 §3 challenge of the gateway's protected resources.
BEARER_REALM = 'Bearer realm="bastion"'


class BastionError(Exception):
    """Base of every error Bastion raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a configuration: where (dotted key path, line) and what."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.path or "<root>"
        if self.line is not None:
            where = f"{where} (line {self.line})"
        return f"{where}: {self.message}"


class ConfigError(BastionError):
    """The configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class InvalidValue(BastionError, ValueError):
    """A value a rule refuses; the message is safe to show to whoever supplied it.

    Also a ``ValueError``: raised inside a pydantic validator it becomes a field error
    of the configuration or request being validated.
    """


class ClientMetadataError(InvalidValue):
    """Registration metadata that cannot be accepted; the message names the field."""

    def __init__(
        self, field_name: str, message: str, *, error: str = "invalid_client_metadata"
    ) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        # The RFC 7591 §3.2.2 error code a registration answer carries.
        self.error = error


class RedirectUriError(InvalidValue):
    """Why a redirect URI cannot be registered."""


class AccountRuleError(InvalidValue):
    """An account change the rules refuse; the message is safe to show."""


class WeakPassword(InvalidValue):
    """A password the policy refuses; the message is safe to show to its owner."""


class PasskeyError(InvalidValue):
    """A credential that does not verify; one message for every reason."""


class BadPath(InvalidValue):
    """A request path that no route can match safely."""


class DocumentError(InvalidValue):
    """An OpenAPI or JSON Schema document that cannot be read or is not supported."""


class StoreError(BastionError):
    """A durable or hot store failed."""


class StoreUnavailable(StoreError):
    """A store cannot be reached; ``store`` names which ("database", "hot_state")."""

    def __init__(self, store: str, message: str) -> None:
        self.store = store
        super().__init__(f"{store} unavailable: {message}")


class ConnectionLost(StoreUnavailable):
    """A database connection died under a statement: the pool's others are replaced."""


class SchemaNotCurrent(StoreError):
    """The database schema is not at the revision this code needs."""


class ClientExists(StoreError):
    """A client with that id already exists."""


class DeviceKeyInUse(StoreError):
    """An App Attest key id already recorded, or a DPoP key bound to another device that
    is not revoked: one key, one installation (a cloned app shows up here)."""


class UserExists(StoreError):
    """A user with that username already exists."""


class KeyRingError(BastionError):
    """The signing key ring cannot do what was asked."""


class MasterKeyError(KeyRingError):
    """The master key is missing, malformed, or does not open the key ring."""


class NotFound(BastionError):
    """The named object (client, user, key) does not exist."""


class KeyNotFound(KeyRingError, NotFound):
    """No key with the given id exists in the ring."""


class ReadOnlyClient(BastionError):
    """The client is declared in bastion.toml; change it there."""


class ProblemError(BastionError):
    """An error to answer as RFC 9457 problem details; ``detail`` is client-safe.

    A kind of answer is a subclass declaring ``status``, ``title`` and ``type``.
    """

    status: int = 400
    type: str = "about:blank"
    title: str = "Bad Request"

    def __init__(
        self,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        # Extra response headers (e.g. WWW-Authenticate) and RFC 9457 §3.2 extension
        # members; both are client-safe like ``detail``.
        self.headers = headers or {}
        self.extensions = extensions or {}


class InvalidInput(ProblemError):
    """``extensions["errors"]`` lists ``{"pointer", "detail"}`` pairs, never the input itself."""

    status = 400
    title = "Invalid Request"
    type = "urn:bastion:problem:invalid-input"


class Unauthenticated(ProblemError):
    """No usable access token; the challenge names the RFC 6750 §3.1 error code."""

    status = 401
    title = "Unauthorized"
    type = "urn:bastion:problem:unauthenticated"

    def __init__(self, detail: str, error: str | None = "invalid_token") -> None:
        challenge = BEARER_REALM if error is None else f'{BEARER_REALM}, error="{error}"'
        super().__init__(detail, headers={"www-authenticate": challenge})


AttestationReason = Literal[
    "certificate_chain_invalid",
    "certificate_expired",
    "certificate_not_yet_valid",
    "nonce_mismatch",
    "key_id_mismatch",
    "rp_id_mismatch",
    "counter_nonzero",
    "aaguid_mismatch",
    "credential_id_mismatch",
    "signature_invalid",
    "counter_not_increasing",
    "malformed",
]


class AttestationError(BastionError):
    """An Apple App Attest attestation or assertion that does not verify. ``reason`` names
    the check that refused it (one of ``AttestationReason``), for the audit trail; it is
    not meant for the device, which learns only that it was refused."""

    def __init__(self, reason: AttestationReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: AttestationReason = reason
        self.detail = detail


IntegrityReason = Literal[
    "malformed",
    "unsupported_algorithm",
    "decryption_failed",
    "signature_invalid",
    "wrong_package",
    "nonce_mismatch",
    "request_hash_mismatch",
    "stale",
    "unrecognized_app",
    "unknown_certificate",
    "version_too_old",
    "device_integrity",
    "unlicensed",
]


class IntegrityError(BastionError):
    """A Google Play Integrity token that does not decrypt or verify, or a verdict the
    rules refuse. ``reason`` names the check (one of ``IntegrityReason``), for the audit
    trail; the device learns only that it was refused."""

    def __init__(self, reason: IntegrityReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: IntegrityReason = reason
        self.detail = detail


class DpopError(BastionError):
    """A refused DPoP proof (RFC 9449 §4.3) or presentation (§7). ``reason`` is for the
    audit trail (one word from a fixed set), ``description`` for the client (never
    echoing its input), ``error`` the code the client sees: ``invalid_dpop_proof``,
    ``use_dpop_nonce`` (§8, §9) or ``invalid_token`` (a token sent under the wrong
    scheme)."""

    def __init__(
        self,
        reason: str,
        description: str,
        error: Literal["invalid_dpop_proof", "use_dpop_nonce", "invalid_token"] = (
            "invalid_dpop_proof"
        ),
    ) -> None:
        super().__init__(f"{reason}: {description}")
        self.reason = reason
        self.description = description
        self.error = error


class DpopRefused(ProblemError):
    """A request refused under the DPoP scheme (RFC 9449 §7.1); ``headers`` are the
    challenge (``Dpop.challenge``: the error, the algorithms, a nonce when one is due)."""

    status = 401
    title = "Unauthorized"
    type = "urn:bastion:problem:unauthenticated"

    def __init__(self, detail: str, error: str, headers: dict[str, str]) -> None:
        super().__init__(detail, headers=headers)
        self.error = error


class SignInRequired(ProblemError):
    """Pages answer with the sign-in page; their scripts with 401 and, in
    ``extensions["redirect"]``, where the page goes to sign in."""

    status = 401
    title = "Unauthorized"
    type = "urn:bastion:problem:sign-in-required"


class Refusal(ProblemError):
    """A refused request; ``reason`` is for the audit trail, never for the client."""

    def __init__(self, detail: str, reason: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail, headers=headers)
        self.reason = reason


class Forbidden(Refusal):
    status = 403
    title = "Forbidden"
    type = "urn:bastion:problem:forbidden"


class Hidden(Refusal):
    """Answered exactly like a route or object that does not exist."""

    status = 404
    title = "Not Found"
    type = "about:blank"

    def __init__(self, reason: str) -> None:
        super().__init__("No such resource.", reason)


class StepUpRequired(Refusal):
    status = 401
    title = "Unauthorized"
    type = "urn:bastion:problem:step-up-required"


class DeviceRefused(Refusal):
    """A device attestation or assertion that does not hold: a cryptographic check, the
    challenge, the app declared on the client, the key's standing. ``reason`` (one word,
    see docs/device-trust.md) goes to the audit trail; the device learns only ``detail``,
    which never says which check failed."""

    status = 403
    title = "Forbidden"
    type = "urn:bastion:problem:device-refused"


class DeviceUnverifiable(ProblemError):
    """The attestation could not be judged because the trust data cannot be had (Google's
    API unreachable, an Apple root or Play Console key that cannot be read). Not a refusal
    of the device: the caller applies its policy's outage fallback; where nothing else
    does, it is answered 503 with ``Retry-After``. ``reason`` is for the audit trail."""

    status = 503
    title = "Service Unavailable"
    type = "urn:bastion:problem:device-unverifiable"

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail, headers={"retry-after": "30"})
        self.reason = reason


class ResourceNotFound(ProblemError):
    status = 404
    title = "Not Found"
    type = "about:blank"


class RequestTimeout(ProblemError):
    status = 408
    title = "Request Timeout"
    type = "urn:bastion:problem:request-timeout"


class IdempotencyConflict(ProblemError):
    status = 409
    title = "Conflict"
    type = "urn:bastion:problem:idempotency-in-progress"


class IdempotencyOutcomeUnknown(IdempotencyConflict):
    type = "urn:bastion:problem:idempotency-outcome-unknown"


class BodyTooLarge(ProblemError):
    status = 413
    title = "Content Too Large"
    type = "urn:bastion:problem:body-too-large"


class UnsupportedMediaType(ProblemError):
    status = 415
    title = "Unsupported Media Type"
    type = "urn:bastion:problem:unsupported-media-type"


class IdempotencyMismatch(ProblemError):
    status = 422
    title = "Unprocessable Content"
    type = "urn:bastion:problem:idempotency-key-reused"


class RateLimited(ProblemError):
    status = 429
    title = "Too Many Requests"


class QuotaExceeded(RateLimited):
    """Over a limit the client is told about (RateLimit-Policy names it)."""

    type = "https://iana.org/assignments/http-problem-types#quota-exceeded"


class AbnormalUsage(RateLimited):
    """Over a hidden limit: the client learns only that its usage looks abnormal."""

    type = "https://iana.org/assignments/http-problem-types#abnormal-usage-detected"


class HeadersTooLarge(ProblemError):
    status = 431
    title = "Request Header Fields Too Large"
    type = "urn:bastion:problem:headers-too-large"


class CircuitOpen(ProblemError):
    status = 503
    title = "Service Unavailable"
    type = "urn:bastion:problem:circuit-open"


class UpstreamFailure(ProblemError):
    status = 502
    title = "Bad Gateway"
    type = "urn:bastion:problem:upstream-failure"
    # False only when the request provably never reached the upstream (no connection).
    maybe_processed = True


class GatewayTimeout(UpstreamFailure):
    # Its own type: RFC 9457 §3.1.3 keeps a type's title the same on every occurrence.
    status = 504
    title = "Gateway Timeout"
    type = "urn:bastion:problem:upstream-timeout"


class CallbackRefused(BastionError):
    """An answer at the demo app's redirect URI that is not the answer to its own
    request: another ``state`` (RFC 6749 §10.12), another ``iss`` (RFC 9207), or an
    error; the message says which, for the page."""


class OAuthError(BastionError):
    """An OAuth protocol error; ``error`` and ``description`` are sent to the client.

    ``description`` must never carry input back verbatim (it is shown to clients and,
    on the error page, to users), nor internal detail.
    """

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


class UnsafeRedirect(OAuthError):
    """An error that must be shown on Bastion's page, never sent to a redirect URI."""
