"""Object-level authorization from the ownership registry (OWASP API1, BOLA).

When a create call through the gateway returns an object id, the caller is recorded as
its owner; later calls naming that id are refused unless they come from the owner. An
id with no record is refused too: deny by default, as for routes. Ownership never
changes once recorded (the first owner wins), so owners found are cached in memory.
"""

from __future__ import annotations

from collections import OrderedDict

from bastion.clock import Clock
from bastion.gateway.policy import Hidden
from bastion.store.sql.ownership import SqlOwnershipStore

CACHE_SIZE = 100_000


class Ownership:
    def __init__(self, store: SqlOwnershipStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._known: OrderedDict[tuple[str, str], str] = OrderedDict()

    async def require_owner(self, kind: str, object_id: str, subject: str) -> None:
        owner = await self.owner(kind, object_id)
        if owner is None:
            raise Hidden("object not in the ownership registry")
        if owner != subject:
            raise Hidden("object owned by another subject")

    async def owner(self, kind: str, object_id: str) -> str | None:
        key = (kind, object_id)
        if (owner := self._known.get(key)) is not None:
            return owner
        owner = await self._store.owner(kind, object_id)
        if owner is not None:
            self._remember(key, owner)
        return owner

    async def record(self, kind: str, object_id: str, subject: str) -> str:
        owner = await self._store.record(kind, object_id, subject, self._clock.now())
        self._remember((kind, object_id), owner)
        return owner

    def _remember(self, key: tuple[str, str], owner: str) -> None:
        self._known[key] = owner
        if len(self._known) > CACHE_SIZE:
            self._known.popitem(last=False)
