"""Deleting expired rows, in bounded batches, without removing anything still needed.

Every access token issued, every authorization code, refresh family, browser session,
recovery ticket and SQL idempotency record is a row that outlives its use; one busy app
adds thousands an hour. What may go, and when (``horizons`` is the pure rule):

* a record whose only purpose ends at its own expiry (an access token's index entry,
  a session, a recovery ticket, an idempotency record) goes ``MAX_CLOCK_SKEW`` after
  it, the longest a token past its ``exp`` still verifies, so that processes whose
  clocks disagree slightly never see a live record vanish;
* a refresh family stays ``keys.max_token_lifetime`` longer than that: revoking a
  client's or user's families denylists the access tokens they produced, which live
  up to that long after the family's last use;
* an authorization code stays as long as anything issued from it can be revoked: with
  its family, and otherwise as long as a family would. A consumed code still in the
  table is what turns a second redemption into replay detection (RFC 6749 §4.1.2,
  RFC 9700 §4.5), which revokes its family and tokens.

Each batch is one short transaction; on PostgreSQL concurrent pruners (one per
process) skip each other's rows instead of waiting. ``Pruner`` runs this every
``database.prune_interval`` inside ``bastion serve``; a failure is logged and the next
interval tries again, so pruning never stands in the way of serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sqlalchemy import Column, Table, and_, delete, select
from sqlalchemy.sql.elements import ColumnElement

from bastion.clock import Clock
from bastion.oauth.tokens import MAX_CLOCK_SKEW
from bastion.store.sql.database import Database
from bastion.store.sql.rows import Rows
from bastion.store.sql.schema import (
    authorization_codes,
    browser_sessions,
    idempotency_records,
    issued_tokens,
    recovery_tickets,
    refresh_families,
)

log = logging.getLogger("bastion.store")

# Rows per transaction: short locks on SQLite's single writer, few round trips.
BATCH = 500


@dataclass(frozen=True)
class Horizons:
    """Records whose expiry is before a horizon may be deleted."""

    # Dead to every process: past its own expiry by more than the allowed clock skew.
    expired: float
    # Nothing issued from it can still verify, so there is nothing left to revoke.
    revocable: float


def horizons(now: float, *, max_token_lifetime: float) -> Horizons:
    expired = now - MAX_CLOCK_SKEW
    return Horizons(expired=expired, revocable=expired - max_token_lifetime)


@dataclass(frozen=True)
class Expiring:
    table: Table
    key: Column[str]
    deletable: Callable[[Horizons], ColumnElement[bool]]


RULES = (
    Expiring(issued_tokens, issued_tokens.c.jti, lambda h: issued_tokens.c.expires_at < h.expired),
    Expiring(
        refresh_families,
        refresh_families.c.family_id,
        lambda h: refresh_families.c.expires_at < h.revocable,
    ),
    # Codes with a family are deleted with it (below), never before.
    Expiring(
        authorization_codes,
        authorization_codes.c.code_hash,
        lambda h: and_(
            authorization_codes.c.family_id.is_(None),
            authorization_codes.c.expires_at < h.revocable,
        ),
    ),
    Expiring(
        browser_sessions,
        browser_sessions.c.session_hash,
        lambda h: browser_sessions.c.expires_at < h.expired,
    ),
    Expiring(
        recovery_tickets,
        recovery_tickets.c.ticket_hash,
        lambda h: recovery_tickets.c.expires_at < h.expired,
    ),
    Expiring(
        idempotency_records,
        idempotency_records.c.key,
        lambda h: idempotency_records.c.expires_at < h.expired,
    ),
)

# Plain strings: SQLAlchemy's names are a str subclass that JSON encoders refuse as keys.
TABLES = tuple(str(rule.table.name) for rule in RULES)


async def prune_expired(
    database: Database, now: float, *, max_token_lifetime: float, batch: int = BATCH
) -> dict[str, int]:
    """Delete every expired row that nothing needs any more; rows deleted per table."""
    rows = Rows(database)
    limits = horizons(now, max_token_lifetime=max_token_lifetime)
    counts = dict.fromkeys(TABLES, 0)
    for rule in RULES:
        while True:
            deleted, cascaded = await _delete_batch(rows, rule, limits, batch)
            counts[str(rule.table.name)] += deleted
            counts[str(authorization_codes.name)] += cascaded
            if deleted < batch:
                break
    return counts


async def _delete_batch(
    rows: Rows, rule: Expiring, limits: Horizons, batch: int
) -> tuple[int, int]:
    """One transaction: up to ``batch`` rows of the rule's table, and their codes."""
    async with rows.transaction() as tx:
        keys = await tx.values(
            select(rule.key)
            .where(rule.deletable(limits))
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        if not keys:
            return 0, 0
        cascaded = 0
        if rule.table is refresh_families:
            cascaded = await tx.run(
                delete(authorization_codes).where(authorization_codes.c.family_id.in_(keys))
            )
        await tx.run(delete(rule.table).where(rule.key.in_(keys)))
    return len(keys), cascaded


class Pruner:
    """``prune_expired`` every ``interval`` seconds for as long as ``running`` is entered."""

    def __init__(
        self, database: Database, clock: Clock, *, interval: float, max_token_lifetime: float
    ) -> None:
        self._database = database
        self._clock = clock
        self._interval = interval
        self._max_token_lifetime = max_token_lifetime

    async def prune(self) -> dict[str, int]:
        return await prune_expired(
            self._database, self._clock.now(), max_token_lifetime=self._max_token_lifetime
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                counts = await self.prune()
            except Exception:
                # Pruning is housekeeping: an outage or a bad batch must not stop serving.
                log.warning(
                    "deleting expired rows failed; trying again in %.0f s",
                    self._interval,
                    exc_info=True,
                )
                continue
            if any(counts.values()):
                log.info(
                    "deleted expired rows: %s",
                    ", ".join(f"{table} {n}" for table, n in counts.items() if n),
                )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self.run(), name="bastion-pruner")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
