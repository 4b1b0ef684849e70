"""Rate limiting as a service: GCRA decisions over the hot store, one round trip each.

A request is checked against every limit that applies to it at once, all or nothing
(``HotStore.rate_check``): a refusal by one limit does not spend the others. Keys are
``rl:<scope>:<limit>:<hash of the key parts>``, so user input never shapes a key.

When hot state is unreachable the limiter either keeps counting in this process
("local", the default: each process enforces the limits on its own share) or refuses
with 503 ("closed"). Each change between the two is logged and audited once.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, NoReturn

from bastion.audit import AuditEvent, AuditPipeline, Outcome
from bastion.clock import Clock
from bastion.errors import AbnormalUsage, QuotaExceeded, StoreUnavailable
from bastion.guards import hits
from bastion.guards.gcra import Decision, Rate, decide
from bastion.guards.ratelimit_headers import (
    Advertised,
    Advertisement,
    delay_seconds,
    policy_field,
    ratelimit_field,
)
from bastion.guards.settings import LimitSettings
from bastion.store.memory.hot import MemoryHotStore
from bastion.store.protocols import HotStore

log = logging.getLogger("bastion.guards")

RETRY_DOWN_STORE = 1.0


class Facts(NamedTuple):
    """What a limit can be keyed by, for one request (a tuple: one is made per request,
    and a tuple is built fastest)."""

    ip: str | None = None
    user: str | None = None
    client: str | None = None
    route: str = ""
    claims: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Verdict:
    """Header fields to add to the answer (visible limits only), as the wire carries them."""

    fields: tuple[tuple[bytes, bytes], ...] = ()

    @property
    def headers(self) -> dict[str, str]:
        """The fields by name, as text."""
        return {name.decode(): value.decode() for name, value in self.fields}


# A request no limit applies to, or only limits the client is not told about.
UNADVERTISED = Verdict()


@dataclass(frozen=True)
class Compiled:
    """What a limit (at one tier) needs per request, built once: its rate, and its
    header fields when it is visible."""

    limit: LimitSettings
    rate: Rate
    advertisement: Advertisement | None


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
    return _counter_key(scope, limit.name, "\x00".join(parts))


# Keys recur request after request (the same users, the same addresses); a bounded cache
# spares hashing them again, and an attacker cycling keys only makes it miss.
@functools.lru_cache(maxsize=4096)
def _counter_key(scope: str, name: str, parts: str) -> str:
    digest = hashlib.blake2b(parts.encode(), digest_size=16).hexdigest()
    return f"rl:{scope}:{name}:{digest}"


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
        # Rates and header fields per (limit, tier), built once: settings never change
        # at run time (a reload builds new limit objects, checked by identity).
        self._compiled: dict[tuple[int, str | None], Compiled] = {}

    def check(
        self, scope: str, limits: Sequence[LimitSettings], facts: Facts
    ) -> Coroutine[Any, Any, Verdict]:
        """Admit the request or raise ``RateLimited`` (429) naming visible limits only
        (awaited; the path for one limit or several is chosen without a coroutine more)."""
        if len(limits) == 1:
            return self._check_one(scope, limits[0], facts)
        return self._check_all(scope, limits, facts)

    async def _check_all(
        self, scope: str, limits: Sequence[LimitSettings], facts: Facts
    ) -> Verdict:
        applying = [
            (limit, key, self._compile(limit, facts).rate)
            for limit in limits
            if (key := key_for(scope, limit, facts)) is not None
        ]
        if not applying:
            return UNADVERTISED
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
        if not all(d.allowed for d in decisions):
            await self._count_hit(facts)
            self._refuse(scope, facts, applying, decisions)
        advertised = [
            # The quota is the burst, what can be spent at once, and its window the time
            # the burst takes to come back at the sustained rate: GCRA never leaves more
            # than the burst, so r never exceeds q (draft-10 §4.1.1).
            Advertised(limit.name, rate.burst, rate.span, d.remaining, d.retry_after)
            for (limit, _, rate), d in zip(applying, decisions, strict=True)
            if limit.visible
        ]
        if not advertised:
            return UNADVERTISED
        return Verdict(
            (
                (b"ratelimit-policy", policy_field(advertised).encode()),
                (b"ratelimit", ratelimit_field(advertised).encode()),
            )
        )

    async def _check_one(self, scope: str, limit: LimitSettings, facts: Facts) -> Verdict:
        """``check`` for a route with one limit (the usual case): the same decision and
        the same fields, without the lists, and with the policy field built once."""
        key = key_for(scope, limit, facts)
        if key is None:
            return UNADVERTISED
        compiled = self._compile(limit, facts)
        rate = compiled.rate
        now = self._clock.now()
        keys = [key]
        rates = [(rate.interval, rate.span)]
        if self._degraded or self._mode == "closed":
            _, previous = await self._rate_check(keys, rates, now)
        else:
            try:
                _, previous = await self._hot.rate_check(keys, rates, now)
            except StoreUnavailable:
                _, previous = await self._rate_check(keys, rates, now)
        decision = decide(rate, previous[0], now)
        if not decision.allowed:
            await self._count_hit(facts)
            self._refuse(scope, facts, [(limit, key, rate)], [decision])
        advertisement = compiled.advertisement
        if advertisement is None:
            return UNADVERTISED
        return Verdict(
            (
                (b"ratelimit-policy", advertisement.policy),
                (b"ratelimit", advertisement.current(decision.remaining, decision.retry_after)),
            )
        )

    async def _count_hit(self, facts: Facts) -> None:
        # Only on a refusal, so the common path pays nothing: the risk engine's
        # rate_limited signal (bastion.guards.hits).
        if facts.user is not None:
            await hits.record(self._hot, facts.user)

    def _refuse(
        self,
        scope: str,
        facts: Facts,
        applying: Sequence[tuple[LimitSettings, str, Rate]],
        decisions: Sequence[Decision],
    ) -> NoReturn:
        """Audit and raise the 429 for a request at least one limit refused."""
        advertised = [
            # A refused request spent nothing, not even on the limits it passed.
            Advertised(
                limit.name,
                rate.burst,
                rate.span,
                d.remaining + 1 if d.allowed else 0,
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

    def _compile(self, limit: LimitSettings, facts: Facts) -> Compiled:
        tier = tier_of(limit, facts.claims) if limit.tiers else None
        compiled = self._compiled.get((id(limit), tier))
        if compiled is None or compiled.limit is not limit:
            rate = limit.rate_for(tier)
            shown = Advertisement(limit.name, rate.burst, rate.span) if limit.visible else None
            compiled = self._compiled[(id(limit), tier)] = Compiled(limit, rate, shown)
        return compiled

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
