"""Settings of the guards: rate limits, idempotency, retries, breakers, pagination.

Gateway routes and upstreams carry their own guard tables (``limits``, ``idempotency``,
``pagination``; ``retries``, ``breaker``); ``[guards]`` holds the defaults for Bastion's
own endpoints and the failure modes. Every option is in docs/guards.md.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bastion.configtypes import Duration, Section
from bastion.guards.gcra import Rate

KEY_PARTS = ("ip", "user", "client", "route", "tier", "global")


class LimitSettings(Section):
    """One limit: ``rate`` requests per ``window``, ``burst`` at once, per key."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    by: tuple[Literal["ip", "user", "client", "route", "tier", "global"], ...] = ("ip",)
    rate: int = Field(ge=1)
    window: Duration = 60.0
    burst: int | None = Field(None, ge=1)
    # Quota the client sees in RateLimit headers, or an abuse threshold it does not.
    visible: bool = True
    # Per-tier rates: the tier comes from this claim (a string, or the first listed role).
    tier_claim: str = "tier"
    tiers: dict[str, int] = Field(default_factory=dict)

    @field_validator("by", mode="before")
    @classmethod
    def _by(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> LimitSettings:
        if self.window <= 0:
            raise ValueError("window must be positive")
        if not self.by:
            raise ValueError('by names at least one key part, or "global"')
        if "global" in self.by and len(self.by) > 1:
            raise ValueError('"global" is one shared counter; it takes no other key part')
        if self.tiers and "tier" not in self.by:
            raise ValueError('tiers need "tier" in by')
        if any(rate < 1 for rate in self.tiers.values()):
            raise ValueError("tier rates must be at least 1")
        return self

    def rate_for(self, tier: str | None) -> Rate:
        rate = self.tiers.get(tier or "", self.rate)
        return Rate(rate, self.window, self.burst or rate)

    @property
    def before_authentication(self) -> bool:
        """Keyed only by what is known before the token is checked."""
        return set(self.by) <= {"ip", "route", "global"}


def _limit(name: str, rate: int, window: float, burst: int, visible: bool) -> LimitSettings:
    return LimitSettings(
        name=name, by=("ip",), rate=rate, window=window, burst=burst, visible=visible
    )


class EndpointLimits(Section):
    """Limits on Bastion's own endpoints (per client address unless configured)."""

    login: tuple[LimitSettings, ...] = (_limit("login", 30, 60.0, 10, False),)
    token: tuple[LimitSettings, ...] = (_limit("token", 300, 60.0, 60, True),)
    authorize: tuple[LimitSettings, ...] = (_limit("authorize", 120, 60.0, 30, False),)
    registration: tuple[LimitSettings, ...] = (_limit("registration", 30, 3600.0, 10, True),)
    # Challenges, attestations and encryption keys (/device/...): an app asks for a few
    # at start and per protected request; more from one address is a script or a farm.
    device: tuple[LimitSettings, ...] = (_limit("device", 120, 60.0, 30, True),)


class IdempotencySettings(Section):
    """draft-ietf-httpapi-idempotency-key-header for a POST or PATCH route."""

    required: bool = False
    ttl: Duration = 86_400.0
    # The draft's key is a quoted sf-string; accept unquoted keys from older apps too.
    accept_unquoted: bool = False


class RetrySettings(Section):
    attempts: int = Field(2, ge=0, le=10)
    # Retry POST/PATCH that carry an idempotency key (forwarded upstream). Turn off for
    # an upstream that ignores Idempotency-Key: its retries could write twice.
    keyed: bool = True
    base: Duration = 0.05
    cap: Duration = 1.0
    budget_ratio: float = Field(0.2, ge=0.0, le=1.0)
    budget_floor: float = Field(3.0, ge=0.0)


class BreakerSettings(Section):
    enabled: bool = True
    consecutive_failures: int = Field(5, ge=1)
    failure_rate: float = Field(0.5, gt=0.0, le=1.0)
    window: Duration = 30.0
    min_requests: int = Field(20, ge=1)
    open_for: Duration = 10.0
    probes: int = Field(1, ge=1, le=100)


class PaginationSettings(Section):
    """Cursor pagination in front of an upstream list endpoint."""

    # "offset": the upstream takes offset/limit; "token": it answers a next-page token.
    style: Literal["offset", "token"] = "offset"
    max_page_size: int = Field(100, ge=1, le=10_000)
    default_page_size: int = Field(20, ge=1)
    limit_param: str = "limit"
    offset_param: str = "offset"
    token_param: str = "page_token"  # noqa: S105 - a parameter name
    # JSON pointer to the list in the upstream's answer ("" when the answer is the list).
    items: str = ""
    # With style "token": where the upstream's answer holds the next token.
    next_token: str = "/next"  # noqa: S105 - a JSON pointer

    @model_validator(mode="after")
    def _sizes(self) -> PaginationSettings:
        if self.default_page_size > self.max_page_size:
            raise ValueError("default_page_size cannot exceed max_page_size")
        pointer = re.compile(r"^(/([^/~]|~[01])*)*$")
        if not self.next_token or not pointer.match(self.next_token):
            raise ValueError("next_token is a JSON pointer such as /next")
        if not pointer.match(self.items):
            raise ValueError('items is a JSON pointer such as /items, or ""')
        return self


class GuardSettings(Section):
    # When hot state (Redis) is unreachable: count in this process ("local", the
    # default: limits stay, per process) or refuse with 503 ("closed").
    rate_limit_store_failure: Literal["local", "closed"] = "local"
    idempotency_store: Literal["hot", "sql"] = "hot"
    endpoints: EndpointLimits = EndpointLimits()
    cursor_lifetime: Duration = 3600.0
