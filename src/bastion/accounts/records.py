"""What the accounts area keeps: users, their browser sessions, second factors and
recovery tickets. Stores (``bastion.accounts.stores``) hand these out and take them in."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class User:
    user_id: str
    username: str
    enabled: bool
    created_at: float
    tokens_valid_after: float
    password_hash: str | None = field(default=None, repr=False)
    auth_policy: str = "password"


@dataclass(frozen=True)
class BrowserSession:
    """The server side of the login cookie.

    The cookie holds a random value; stores keep only its SHA-256, so a database dump
    yields no usable session. ``session_id`` is a separate public handle that tokens and
    the account page refer to.
    """

    session_id: str
    subject: str
    auth_time: float
    acr: str
    amr: tuple[str, ...]
    created_at: float
    last_seen_at: float
    expires_at: float
    revoked_at: float | None
    user_agent: str = ""


@dataclass(frozen=True)
class TotpCredential:
    user_id: str
    sealed_secret: bytes = field(repr=False)
    created_at: float
    confirmed_at: float | None
    last_used_step: int | None

    @property
    def confirmed(self) -> bool:
        """Enrolment ends with a first valid code; until then it is no factor."""
        return self.confirmed_at is not None


@dataclass(frozen=True)
class Passkey:
    credential_id: str
    user_id: str
    public_key: bytes = field(repr=False)
    sign_count: int
    name: str
    transports: tuple[str, ...]
    backed_up: bool
    created_at: float
    last_used_at: float | None


@dataclass(frozen=True)
class RecoveryTicket:
    user_id: str
    reset_mfa: bool
    created_by: str
    expires_at: float
