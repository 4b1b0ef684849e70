"""Rate limiting as a service: GCRA decisions over the hot store, one round trip each.

A request is checked against every limit that applies to it at once, all or nothing
(``HotStore.rate_check``): a refusal by one limit does not spend the others. Keys are
``rl:<scope>:<limit>:<hash of the key parts>``, so user input never shapes a key.

When hot state is unreachable the limiter either keeps counting in this process
("local", the default: each process enforces the limits on its own share) or refuses
with 503 ("closed"). Each change between the two is logged and audited once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bastion.audit import AuditEvent, AuditPipeline, Outcome
from bastion.clock import Clock
from bastion.errors import AbnormalUsage, QuotaExceeded, StoreUnavailable
from bastion.guards.gcra import Rate, decide
from bastion.guards.ratelimit_headers import (
    Advertised,
    delay_seconds,
    policy_field,
    ratelimit_field,
)
from bastion.guards.settings import LimitSettings
from bastion.store.memory.hot import MemoryHotStore
from bastion.store.protocols import HotStore

log = logging.getLogger("bastion.guards")

RETRY_DOWN_STORE = 1.0


@dataclass(frozen=True)
class Facts:
    """What a limit can be keyed by, for one request."""

    ip: str | None = None
    user: str | None = None
    client: str | None = None
    route: str = ""
    claims: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Verdict:
    """Headers to add to the answer (visible limits only)."""

    headers: dict[str, str]


def tier_of(limit: LimitSettings, claims: Mapping[str, Any] | None) -> str | None:
    value = (claims or {}).get(limit.tier_claim)
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v in limit.tiers), None)
    return value if isinstance(value, str) else None


def key_for(scope: str, limit: LimitSettings, facts: Facts) -> str | None:
    """The counter's key, or None for a user limit without a user (it does not apply)."""
    parts: list[str] = []
    for part in limit.by:
        if part == "global":
            value: str | None = "*"
        elif part == "tier":
            value = tier_of(limit, facts.claims) or "-"
        elif part == "user":
            value = facts.user  # user limits apply to authenticated requests only
        else:
            # An unknown address or app shares one counter rather than escaping the limit.
            value = {"ip": facts.ip, "client": facts.client, "route": facts.route}[part] or "-"
        if value is None:
            return None
        parts.append(f"{part}={value}")
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=16).hexdigest()
    return f"rl:{scope}:{limit.name}:{digest}"


class RateLimiter:
    def __init__(
        self,
        hot: HotStore,
        *,
        on_store_failure: Literal["local", "closed"],
        audit: AuditPipeline,
        clock: Clock,
    ) -> None:
        self._hot = hot
        self._local = hot if isinstance(hot, MemoryHotStore) else MemoryHotStore(clock)
        self._mode = on_store_failure
        self._audit = audit
        self._clock = clock
        self._degraded = False
        self._retry_at = 0.0
        # Rate objects per (limit, tier), built once: settings never change at run time.
        self._rates: dict[tuple[int, str | None], Rate] = {}

    async def check(self, scope: str, limits: Sequence[LimitSettings], facts: Facts) -> Verdict:
        """Admit the request or raise ``RateLimited`` (429) naming visible limits only."""
        applying = [
            (limit, key, self._rate(limit, facts))
            for limit in limits
            if (key := key_for(scope, limit, facts)) is not None
        ]
        if not applying:
            return Verdict({})
        now = self._clock.now()
        keys = [key for _, key, _ in applying]
        rates = [(rate.interval, rate.span) for _, _, rate in applying]
        if self._degraded or self._mode == "closed":
            _, previous = await self._rate_check(keys, rates, now)
        else:
            try:  # the common case, without a coroutine more
                _, previous = await self._hot.rate_check(keys, rates, now)
            except StoreUnavailable:
                _, previous = await self._rate_check(keys, rates, now)
        decisions = [
            decide(rate, tat, now) for (_, _, rate), tat in zip(applying, previous, strict=True)
        ]
        refused = not all(d.allowed for d in decisions)
        advertised = [
            Advertised(
                limit.name,
                # The quota is the burst, what can be spent at once, and its window the
                # time the burst takes to come back at the sustained rate: GCRA never
                # leaves more than the burst, so r never exceeds q (draft-10 §4.1.1).
                rate.burst,
                rate.span,
                # A refused request spent nothing, not even on the limits it passed.
                (d.remaining + 1 if refused else d.remaining) if d.allowed else 0,
                d.retry_after,
            )
            for (limit, _, rate), d in zip(applying, decisions, strict=True)
            if limit.visible
        ]
        headers = {}
        if advertised:
            headers = {
                "ratelimit-policy": policy_field(advertised),
                "ratelimit": ratelimit_field(advertised),
            }
        if not refused:
            return Verdict(headers)
        violated = [
            limit for (limit, _, _), d in zip(applying, decisions, strict=True) if not d.allowed
        ]
        wait = max(d.retry_after for d in decisions if not d.allowed)
        visible = [limit.name for limit in violated if limit.visible]
        self._audit.emit(
            AuditEvent(
                "guards.rate_limited",
                Outcome.DENIED,
                actor=f"user:{facts.user}" if facts.user else f"ip:{facts.ip}",
                policy=",".join(limit.name for limit in violated),
                details={"scope": scope, "client": facts.client},
            )
        )
        refusal = QuotaExceeded if visible else AbnormalUsage
        raise refusal(
            "Too many requests. Wait before trying again.",
            headers={**headers, "retry-after": str(max(1, delay_seconds(wait)))},
            extensions={"violated-policies": visible} if visible else {},
        )

    def _rate(self, limit: LimitSettings, facts: Facts) -> Rate:
        tier = tier_of(limit, facts.claims) if limit.tiers else None
        rate = self._rates.get((id(limit), tier))
        if rate is None:
            rate = self._rates[(id(limit), tier)] = limit.rate_for(tier)
        return rate

    async def _rate_check(
        self, keys: list[str], rates: list[tuple[float, float]], now: float
    ) -> tuple[bool, list[float | None]]:
        # While hot state is down, it is asked again only once per RETRY_DOWN_STORE, so
        # requests do not each wait out a connection timeout.
        if self._degraded and now < self._retry_at:
            return await self._fallback(keys, rates, now, StoreUnavailable("hot_state", "down"))
        try:
            result = await self._hot.rate_check(keys, rates, now)
        except StoreUnavailable as exc:
            self._retry_at = now + RETRY_DOWN_STORE
            return await self._fallback(keys, rates, now, exc)
        self._transition(degraded=False, detail="shared counters again")
        return result

    async def _fallback(
        self,
        keys: list[str],
        rates: list[tuple[float, float]],
        now: float,
        exc: StoreUnavailable,
    ) -> tuple[bool, list[float | None]]:
        if self._mode == "closed":
            self._transition(degraded=True, detail="refusing requests")
            raise exc
        self._transition(degraded=True, detail="counting in this process")
        return await self._local.rate_check(keys, rates, now)

    def _transition(self, *, degraded: bool, detail: str) -> None:
        if degraded == self._degraded:
            return
        self._degraded = degraded
        log.warning("rate limiting: hot state %s; %s", "down" if degraded else "back", detail)
        self._audit.emit(
            AuditEvent(
                "guards.ratelimit.degraded" if degraded else "guards.ratelimit.restored",
                Outcome.FAILURE if degraded else Outcome.SUCCESS,
                details={"mode": self._mode, "detail": detail},
            )
        )
