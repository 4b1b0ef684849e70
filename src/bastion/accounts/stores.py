"""What the accounts area needs from its stores: users, browser sessions, second factors.

Implementations live in ``bastion.store`` (SQL: ``store/sql/users.py``, ``sessions.py``,
``factors.py``); each passes the contract suite in ``tests/store``. Every "use once" rule
is one atomic step of the store, so two concurrent attempts with the same code cannot
both succeed (RFC 6238 §5.2; NIST SP 800-63B §5.1.2.2 and §5.1.4.2).
"""

from __future__ import annotations

from typing import Protocol

from bastion.accounts.records import BrowserSession, Passkey, RecoveryTicket, TotpCredential, User


class UserStore(Protocol):
    async def create(self, username: str, password_hash: str | None, now: float) -> User:
        """A new enabled user with a fresh random id; raises ``UserExists``."""
        ...

    async def get(self, user_id: str) -> User | None: ...

    async def token_state(self, user_id: str) -> tuple[bool, float] | None:
        """``(enabled, tokens_valid_after)`` of the user, or None: what every token check
        (introspection, the gateway) reads, without the rest of the row."""
        ...

    async def by_username(self, username: str) -> User | None: ...

    async def list(self) -> list[User]:
        """Every user, by username."""
        ...

    async def set_password_hash(self, user_id: str, password_hash: str) -> None: ...

    # The setters below answer whether the user exists.

    async def set_policy(self, user_id: str, policy: str) -> bool: ...

    async def set_enabled(self, user_id: str, enabled: bool) -> bool: ...

    async def invalidate_tokens(self, user_id: str, now: float) -> bool:
        """Every token and session issued before ``now`` stops working (lost phone)."""
        ...

    async def delete(self, user_id: str) -> bool: ...


class SessionStore(Protocol):
    """Browser sessions, found by the SHA-256 of their cookie (``session_hash``)."""

    async def create(self, session_hash: str, session: BrowserSession) -> None: ...

    async def get(self, session_hash: str) -> BrowserSession | None: ...

    async def active(self, subject: str, now: float) -> list[BrowserSession]:
        """The subject's sessions that are neither revoked nor past their absolute end,
        most recently seen first."""
        ...

    async def elevate(
        self, session_id: str, new_hash: str, acr: str, amr: tuple[str, ...], now: float
    ) -> BrowserSession | None:
        """Step-up: a live session gets a new level, a new auth_time and a new cookie hash;
        None when the session is gone or revoked."""
        ...

    async def touch(self, session_hash: str, now: float) -> None: ...

    async def forget(self, subject: str) -> None:
        """Delete a subject's sessions (account deletion)."""
        ...

    async def revoke(
        self, now: float, *, session_id: str | None = None, subject: str | None = None
    ) -> list[str]:
        """Revoke one session or all of a subject's (exactly one selector, else
        ``ValueError``); the ids of the sessions this call revoked."""
        ...


class FactorStore(Protocol):
    """TOTP credentials, recovery codes, passkeys and operator recovery tickets."""

    async def totp(self, user_id: str) -> TotpCredential | None: ...

    async def has_totp(self, user_id: str) -> bool:
        """Whether the user has a confirmed TOTP credential."""
        ...

    async def start_totp(self, user_id: str, sealed_secret: bytes, now: float) -> None:
        """An unconfirmed credential; it replaces any earlier unconfirmed one only."""
        ...

    async def use_totp_step(self, user_id: str, step: int, now: float, *, confirm: bool) -> bool:
        """Record ``step`` as used, confirming an unconfirmed credential when ``confirm``
        (else only a confirmed one counts); False if it (or a later step) was used."""
        ...

    async def remove_totp(self, user_id: str) -> bool:
        """Remove the credential and the recovery codes that came with it."""
        ...

    async def replace_recovery_codes(self, user_id: str, hashes: list[str], now: float) -> None: ...

    async def use_recovery_code(self, user_id: str, code_hash: str, now: float) -> bool:
        """Mark the user's code used; False if it is not theirs or already used."""
        ...

    async def recovery_codes_left(self, user_id: str) -> int: ...

    async def add_passkey(self, passkey: Passkey) -> None: ...

    async def passkeys(self, user_id: str) -> list[Passkey]:
        """The user's passkeys, oldest first."""
        ...

    async def passkey(self, credential_id: str) -> Passkey | None: ...

    async def passkey_used(self, credential_id: str, sign_count: int, now: float) -> None: ...

    async def remove_passkey(self, user_id: str, credential_id: str) -> bool: ...

    async def remove_all(self, user_id: str) -> None:
        """Every factor and pending recovery ticket of a user (MFA reset, deletion)."""
        ...

    async def add_ticket(self, ticket_hash: str, ticket: RecoveryTicket, now: float) -> None: ...

    async def ticket(self, ticket_hash: str, now: float) -> RecoveryTicket | None:
        """A ticket still usable at ``now``: unused and unexpired."""
        ...

    async def use_ticket(self, ticket_hash: str, now: float) -> bool:
        """Mark a usable ticket used; False if it was not usable."""
        ...
