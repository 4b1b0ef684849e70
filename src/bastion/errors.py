"""Bastion's exception tree.

Every error Bastion raises on purpose derives from ``BastionError``; third-party
errors are translated at the boundary where they occur and chained with ``from``::

    BastionError
    ├── ConfigError                 invalid configuration; carries every ConfigProblem
    ├── StoreError
    │   ├── StoreUnavailable        a store (database, hot state) cannot be reached
    │   └── SchemaNotCurrent        the database schema is not at the code's revision
    ├── KeyRingError
    │   ├── MasterKeyError          master key missing, malformed, wrong or not the ring's
    │   └── KeyNotFound             no key with that id (also a NotFound)
    ├── NotFound                    no client, user or key by that name
    ├── ProblemError                an HTTP answer as RFC 9457 problem details
    │   ├── BodyTooLarge            request body over the configured limit (413)
    │   ├── RequestTimeout          a client that sends its request too slowly (408)
    │   ├── InvalidInput            a request the gateway's validation refused (400)
    │   ├── SignInRequired          a page or its script needs a (recently) signed-in user
    │   └── UpstreamFailure         an upstream that failed, timed out or answered 5xx
    └── OAuthError                  an OAuth error code (RFC 6749 §4.1.2.1, §5.2) for the wire

Messages of ``StoreError`` and ``KeyRingError`` are for operators (logs, CLI); the
HTTP layer never sends them to clients. ``ProblemError`` messages are client-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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


class StoreError(BastionError):
    """A durable or hot store failed."""


class StoreUnavailable(StoreError):
    """A store cannot be reached; ``store`` names which ("database", "hot_state")."""

    def __init__(self, store: str, message: str) -> None:
        self.store = store
        super().__init__(f"{store} unavailable: {message}")


class SchemaNotCurrent(StoreError):
    """The database schema is not at the revision this code needs."""


class KeyRingError(BastionError):
    """The signing key ring cannot do what was asked."""


class MasterKeyError(KeyRingError):
    """The master key is missing, malformed, or does not open the key ring."""


class NotFound(BastionError):
    """The named object (client, user, key) does not exist."""


class KeyNotFound(KeyRingError, NotFound):
    """No key with the given id exists in the ring."""


class ProblemError(BastionError):
    """An error to answer as RFC 9457 problem details; ``detail`` is client-safe."""

    status: int = 400
    type: str = "about:blank"
    title: str = "Bad Request"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        title: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        # Extra response headers (e.g. WWW-Authenticate) and RFC 9457 §3.2 extension
        # members; both are client-safe like ``detail``.
        self.headers = headers or {}
        self.extensions = extensions or {}
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        if type is not None:
            self.type = type


class BodyTooLarge(ProblemError):
    status = 413
    title = "Content Too Large"
    type = "urn:bastion:problem:body-too-large"


class RequestTimeout(ProblemError):
    status = 408
    title = "Request Timeout"
    type = "urn:bastion:problem:request-timeout"


class InvalidInput(ProblemError):
    """``extensions["errors"]`` lists ``{"pointer", "detail"}`` pairs, never the input itself."""

    status = 400
    title = "Invalid Request"
    type = "urn:bastion:problem:invalid-input"


class SignInRequired(ProblemError):
    """Pages answer with the sign-in page; their scripts with 401 and, in
    ``extensions["redirect"]``, where the page goes to sign in."""

    status = 401
    title = "Unauthorized"
    type = "urn:bastion:problem:sign-in-required"


class UpstreamFailure(ProblemError):
    status = 502
    title = "Bad Gateway"
    type = "urn:bastion:problem:upstream-failure"
    # False only when the request provably never reached the upstream (no connection).
    maybe_processed = True


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
