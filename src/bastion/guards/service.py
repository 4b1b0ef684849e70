"""The guards as one service object, built once per process by ``wiring``."""

from __future__ import annotations

from dataclasses import dataclass

from bastion.audit import AuditPipeline
from bastion.clock import Clock
from bastion.config import Settings
from bastion.crypto.derive import derive_key
from bastion.guards.cursors import Cursors
from bastion.guards.idempotency import Idempotency, IdempotencyStore
from bastion.guards.idempotency_stores import HotIdempotencyStore
from bastion.guards.limiter import RateLimiter
from bastion.store.protocols import HotStore
from bastion.store.sql.database import Database
from bastion.store.sql.idempotency import SqlIdempotencyStore


@dataclass
class Guards:
    settings: Settings
    limiter: RateLimiter
    idempotency: Idempotency
    cursors: Cursors


def build_guards(
    settings: Settings,
    *,
    hot: HotStore,
    database: Database,
    audit: AuditPipeline,
    clock: Clock,
    master_key: bytes,
) -> Guards:
    guards = settings.guards
    store: IdempotencyStore = (
        SqlIdempotencyStore(database, clock)
        if guards.idempotency_store == "sql"
        else HotIdempotencyStore(hot)
    )
    return Guards(
        settings=settings,
        limiter=RateLimiter(
            hot, on_store_failure=guards.rate_limit_store_failure, audit=audit, clock=clock
        ),
        idempotency=Idempotency(store, clock),
        cursors=Cursors(derive_key(master_key, "pagination-cursors"), guards.cursor_lifetime),
    )
