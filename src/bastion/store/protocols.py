"""What the rest of Bastion needs from its stores; every implementation passes one contract suite.

Durable data goes through SQL (SQLite embedded, PostgreSQL scaled). Hot state, which may
be lost without harm beyond a reset counter or a repeated challenge, goes through
``HotStore`` (memory embedded, Redis scaled). Every implementation translates its
client library's connection errors into ``StoreUnavailable``.

The hot store and the signing keys serve everyone, so their Protocols are here; the
others live beside the records they keep and the services that use them:
``bastion.accounts.stores`` (users, browser sessions, second factors),
``bastion.authserver.stores`` (clients, consents, grants),
``bastion.gateway.objects.OwnershipStore`` and ``bastion.guards.idempotency.IdempotencyStore``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class HotStore(Protocol):
    """TTL keys and atomic primitives; every method is one atomic step.

    ``ttl`` is in seconds; ``None`` keeps the key until deleted. Counters are stored as
    decimal ASCII, as Redis does, so ``get`` on a counter returns e.g. ``b"3"``.
    """

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store only when the key does not exist; True when this call stored it."""
        ...

    async def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None = None
    ) -> bool:
        """Store ``value`` only if the current value is ``expected`` (None: absent)."""
        ...

    async def compare_and_delete(self, key: str, expected: bytes) -> bool:
        """Delete only if the current value is ``expected`` (releasing a lock one holds)."""
        ...

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add to a counter, creating it at 0; ``ttl`` applies only when it is created."""
        ...

    async def delete(self, key: str) -> bool: ...

    async def ttl(self, key: str) -> float | None:
        """Seconds left, or None when the key is absent or never expires."""
        ...

    async def rate_check(
        self, keys: Sequence[str], rates: Sequence[tuple[float, float]], now: float
    ) -> tuple[bool, list[float | None]]:
        """One GCRA step (``bastion.guards.gcra``) for several keys, all or nothing.

        ``rates`` holds (interval, span) per key. Each key's TAT moves to
        ``max(TAT, now) + interval`` only if no key would pass ``now + span`` (by more
        than one microsecond, the tolerance for rounding); returns
        whether they moved, and each key's TAT before (None: unseen or expired).
        """
        ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class StoredKey:
    """A signing key row: the private key is sealed under the master key."""

    kid: str
    alg: str
    created_at: float
    activates_at: float
    retired_at: float | None
    sealed_private_key: bytes = field(repr=False)


class SigningKeyStore(Protocol):
    async def list_keys(self) -> list[StoredKey]: ...

    async def add_key(self, key: StoredKey, retirements: Mapping[str, float] | None = None) -> None:
        """Insert a key and set ``retired_at`` of others, in one transaction."""
        ...

    async def set_retired(self, retirements: Mapping[str, float]) -> None:
        """Set ``retired_at`` for each key id, in one transaction."""
        ...
