"""Object-level authorization from the ownership registry (OWASP API1, BOLA).

When a create call through the gateway returns an object id, the caller is recorded as
its owner; later calls naming that id are refused unless they come from the owner. An
id with no record is refused too: deny by default, as for routes. Ownership never
changes while an object lives (the first owner wins, a conflicting create is refused);
a successful DELETE through the gateway removes the record, so an id the upstream
reuses cannot lead its old owner to the new object.

Owners found are cached in memory for ``CACHE_SECONDS``: another worker's DELETE is
seen that late at most, which matters only if the upstream reuses the id sooner.
"""

from __future__ import annotations

from typing import Protocol

from bastion.caches import TTLCache
from bastion.clock import Clock
from bastion.errors import Hidden

CACHE_SIZE = 100_000
CACHE_SECONDS = 5.0


class OwnershipStore(Protocol):
    """The registry (SQL: ``bastion.store.sql.ownership``; contract in ``tests/store``).

    Every id the gateway forwards fits (``identifiers.MAX_ID_LENGTH``); a longer one is
    never recorded: ``owner`` finds none and ``record`` raises ``ValueError``.
    """

    async def owner(self, kind: str, object_id: str) -> str | None: ...

    async def record(self, kind: str, object_id: str, owner: str, now: float) -> tuple[str, bool]:
        """Record ``owner`` unless the object already has one; the owner on record, and
        whether this call recorded it. Of creates racing for one id, one is recorded."""
        ...

    async def forget(self, kind: str, object_id: str) -> None: ...


class Ownership:
    def __init__(self, store: OwnershipStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._known: TTLCache[tuple[str, str], str] = TTLCache(clock, CACHE_SIZE)

    async def require_owner(self, kind: str, object_id: str, subject: str) -> None:
        owner = await self.owner(kind, object_id)
        if owner is None:
            raise Hidden("object not in the ownership registry")
        if owner != subject:
            raise Hidden("object owned by another subject")

    async def owner(self, kind: str, object_id: str) -> str | None:
        key = (kind, object_id)
        known = self._known.get(key)
        if known is not None:
            return known
        owner = await self._store.owner(kind, object_id)
        if owner is not None:
            self._remember(key, owner)
        return owner

    async def record(self, kind: str, object_id: str, subject: str) -> tuple[str, bool]:
        """The owner on record, and whether this call recorded ``subject`` as the owner."""
        owner, recorded = await self._store.record(kind, object_id, subject, self._clock.now())
        self._remember((kind, object_id), owner)
        return owner, recorded

    async def forget(self, kind: str, object_id: str) -> None:
        self._known.pop((kind, object_id))
        await self._store.forget(kind, object_id)

    def _remember(self, key: tuple[str, str], owner: str) -> None:
        self._known.set(key, owner, self._clock.now() + CACHE_SECONDS)
