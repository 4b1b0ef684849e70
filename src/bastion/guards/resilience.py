"""Per-upstream resilience: a circuit breaker shared through hot state, and retries.

The breaker's arithmetic is ``bastion.guards.breaker``; this module keeps it in step
with the other processes: when one opens it, it writes ``breaker:<upstream>`` (with the
moment it opened, for ``open_for``) to hot state, and every process looks at that key
at most once a second while its own breaker is closed. Hot state being down only makes
each process decide alone (fail open to local state), never refuses traffic by itself.
"""

from __future__ import annotations

import logging

from bastion.audit import AuditEvent, AuditPipeline, Outcome
from bastion.clock import Clock
from bastion.errors import CircuitOpen, StoreError
from bastion.guards.breaker import Breaker, BreakerPolicy, State
from bastion.guards.ratelimit_headers import delay_seconds
from bastion.guards.settings import BreakerSettings
from bastion.store.protocols import HotStore

log = logging.getLogger("bastion.guards")

SYNC_INTERVAL = 1.0
USER_SAFE = "This service is temporarily unavailable. Please try again in a few seconds."


class SharedBreaker:
    def __init__(
        self,
        upstream: str,
        settings: BreakerSettings,
        hot: HotStore,
        audit: AuditPipeline,
        clock: Clock,
    ) -> None:
        self.upstream = upstream
        self.enabled = settings.enabled
        self.breaker = Breaker(
            BreakerPolicy(
                consecutive_failures=settings.consecutive_failures,
                failure_rate=settings.failure_rate,
                window=settings.window,
                min_requests=settings.min_requests,
                open_for=settings.open_for,
                probes=settings.probes,
            )
        )
        self._hot = hot
        self._audit = audit
        self._clock = clock
        self._key = f"breaker:{upstream}"
        self._next_sync = 0.0

    # The hot path is synchronous: a coroutine per request per step would cost the gateway
    # a tenth of its throughput. Only a look at, or a write to, hot state awaits.

    def sync_due(self, now: float) -> bool:
        """Whether to look at the shared state before ``admit`` (once a second, closed)."""
        return self.breaker.state is State.CLOSED and now >= self._next_sync

    async def adopt_shared(self, now: float) -> None:
        self._next_sync = now + SYNC_INTERVAL
        await self._adopt_shared(now)

    def admit(self, now: float) -> None:
        """Raise ``CircuitOpen`` (503, Retry-After) unless a request may go upstream."""
        if not self.breaker.allow(now):
            wait = max(1, delay_seconds(self.breaker.retry_after(now)))
            raise CircuitOpen(USER_SAFE, headers={"retry-after": str(wait)})

    def note(self, success: bool, now: float) -> bool:
        """Count an outcome; True when it opened the breaker (then ``publish``)."""
        return self.breaker.record(success, now)

    async def allow(self) -> None:
        """``sync_due``/``adopt_shared`` and ``admit`` in one call (for callers off the
        hot path)."""
        now = self._clock.now()
        if self.sync_due(now):
            await self.adopt_shared(now)
        self.admit(now)

    async def record(self, success: bool) -> None:
        now = self._clock.now()
        if self.note(success, now):
            await self.publish(now)

    async def publish(self, now: float) -> None:
        """Tell the audit trail and the other processes that the breaker opened."""
        log.warning("circuit breaker for upstream %s opened", self.upstream)
        self._audit.emit(
            AuditEvent(
                "gateway.breaker.opened",
                Outcome.FAILURE,
                target=self.upstream,
                details={"open_for": self.breaker.policy.open_for},
            )
        )
        try:
            await self._hot.set(self._key, repr(now).encode(), ttl=self.breaker.policy.open_for)
        except StoreError:
            log.warning("breaker state for %s not shared: hot state unavailable", self.upstream)

    async def _adopt_shared(self, now: float) -> None:
        try:
            raw = await self._hot.get(self._key)
        except StoreError:
            return
        if raw is None:
            return
        try:
            opened = float(raw)
        except ValueError:
            return
        if now - opened < self.breaker.policy.open_for:
            self.breaker.trip(opened)
