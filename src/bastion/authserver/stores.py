"""What the authorization server needs from its stores: clients, consents, grants.

The records are the OAuth core's own (``Client``, ``CodeGrant``, ``Family``).
Implementations live in ``bastion.store`` (SQL: ``store/sql/clients.py``,
``consents.py``, ``grants.py``); each passes the contract suite in ``tests/store``.

The two races that matter are settled inside the store, so they hold across any number
of processes: of parallel redemptions of one code exactly one consumes it, and of
parallel refreshes with one token exactly one advances its family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bastion.oauth.clients import Client
from bastion.oauth.codes import CodeGrant
from bastion.oauth.refresh import Family


@dataclass(frozen=True)
class IssuedToken:
    """An access token's entry in the index, written before the token is handed out."""

    jti: str
    client_id: str
    subject: str
    expires_at: float
    family_id: str | None = None
    code_hash: str | None = None


class ClientStore(Protocol):
    """Clients created at run time (CLI, dynamic registration); declared ones live in
    memory (``bastion.authserver.registry``)."""

    async def get(self, client_id: str) -> Client | None: ...

    async def list(self) -> list[Client]:
        """Every stored client, by id."""
        ...

    async def create(
        self, client: Client, now: float, registration_token_hash: str | None = None
    ) -> None:
        """Raises ``ClientExists``."""
        ...

    async def update(self, client: Client, now: float) -> bool:
        """Replace the stored client of that id; False if there is none."""
        ...

    async def delete(self, client_id: str) -> bool: ...

    async def registration_token_hash(self, client_id: str) -> str | None: ...


class ConsentStore(Protocol):
    """The scopes a user agreed to per client, remembered until revoked."""

    async def granted(self, subject: str, client_id: str) -> frozenset[str]: ...

    async def grant(self, subject: str, client_id: str, scopes: frozenset[str], now: float) -> None:
        """Add ``scopes`` to what the subject already granted the client."""
        ...

    async def revoke(self, subject: str, client_id: str | None = None) -> int:
        """Forget the subject's consent to one client, or to all; how many were removed."""
        ...

    async def of_subject(self, subject: str) -> dict[str, frozenset[str]]:
        """Granted scopes by client id."""
        ...


# What a redeemed code writes: its refresh family (None without refresh) and the index
# entry of its access token.
Issuance = tuple[Family | None, IssuedToken]


class GrantStore(Protocol):
    """Authorization codes, refresh token families and the index of issued access tokens."""

    async def save_code(self, grant: CodeGrant) -> None: ...

    async def consume_code(self, code_hash: str, now: float) -> tuple[CodeGrant | None, bool]:
        """The grant, and whether this call consumed it (False: already used, or absent)."""
        ...

    async def redeem_code(
        self, code_hash: str, now: float, issue: Callable[[CodeGrant], Issuance | None]
    ) -> tuple[CodeGrant | None, bool, bool]:
        """In one transaction: consume the code and, only if this call consumed it, write
        what ``issue(grant)`` answered; unless it answers None (the code stays consumed,
        nothing else is written), link the code to the family, create the family (when
        there is one) and index the token, as ``issue_from_code`` does. Returns the grant
        (None: unknown code), whether this call consumed it, and whether it issued.
        ``issue`` must do no I/O. It may run more than once, and before the code is
        consumed (with the grant as this call's consumption leaves it): its answer is
        written only by the call that consumes the code."""
        ...

    async def mark_replayed(self, code_hash: str, now: float) -> None: ...

    async def was_replayed(self, code_hash: str) -> bool: ...

    async def family_of_code(self, code_hash: str) -> str | None: ...

    async def create_family(self, family: Family) -> None: ...

    async def issue_from_code(
        self, code_hash: str, family: Family | None, token: IssuedToken
    ) -> bool:
        """In one transaction: link the code to ``family`` and create it (when given), and
        index ``token``; unless the code was marked replayed (False, nothing written)."""
        ...

    async def rotate_family(
        self,
        family_id: str,
        generation: int,
        now: float,
        rotated_by: str,
        token: IssuedToken,
        dpop_jkt: str | None = None,
    ) -> bool:
        """In one transaction: move a live family from ``generation`` to the next, recording
        the rotating instance's fingerprint, and index ``token``; False (nothing written)
        if someone else advanced it first or it is revoked. ``dpop_jkt`` binds a family
        not yet bound to a DPoP key (RFC 9449 §5); a bound family keeps its key."""
        ...

    async def reissue_in_family(self, family_id: str, generation: int, token: IssuedToken) -> bool:
        """In one transaction: index ``token`` if the family is live at ``generation``
        (a retry inside the grace window); False (nothing written) otherwise."""
        ...

    async def active_families(self, subject: str, now: float) -> list[Family]:
        """The subject's live refresh families (the apps holding a sign-in), most recently
        used first."""
        ...

    async def get_family(self, family_id: str) -> Family | None: ...

    async def revoke_families(
        self,
        now: float,
        reason: str,
        *,
        family_id: str | None = None,
        subject: str | None = None,
        session_id: str | None = None,
        client_id: str | None = None,
        dpop_jkt: str | None = None,
    ) -> list[str]:
        """Revoke the live families matching every selector given (at least one, else
        ``ValueError``); the ids of those this call revoked. ``dpop_jkt`` selects the
        families bound to that DPoP key (RFC 9449 §5), as a revoked device's are."""
        ...

    async def lineage(self, jti: str) -> tuple[str | None, str | None]:
        """The refresh family and code an issued token came from (``None``s if unknown)."""
        ...

    async def record_token(
        self,
        jti: str,
        *,
        client_id: str,
        subject: str,
        expires_at: float,
        family_id: str | None = None,
        code_hash: str | None = None,
    ) -> None: ...

    async def live_tokens(
        self,
        now: float,
        *,
        family_ids: list[str] | None = None,
        code_hash: str | None = None,
        subject: str | None = None,
    ) -> list[tuple[str, float]]:
        """(jti, exp) of access tokens from the given families, code or subject that still
        verify: tokens past ``exp`` by less than ``MAX_CLOCK_SKEW`` count."""
        ...
