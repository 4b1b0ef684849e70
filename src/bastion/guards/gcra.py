"""The Generic Cell Rate Algorithm (ITU-T I.371), the arithmetic of every rate limit.

A limit admits ``rate`` requests per ``window`` on average and up to ``burst`` at once.
Its whole state is one number per key, the theoretical arrival time (TAT): the moment
the key's next request would be on schedule. A request at ``now`` is admitted when

    max(TAT, now) + T - burst * T <= now        with T = window / rate

and then moves TAT to ``max(TAT, now) + T``. Unlike fixed windows it never admits twice
the limit around a window boundary: over any interval of length ``d`` it admits at most
``burst + d / T`` requests (tested as a property). The same arithmetic runs in Python
for the memory backend and in one Lua script for Redis (``bastion.guards.limiter``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

# Arrivals exactly on schedule must not be refused for a rounding error in the sum of
# intervals; every backend compares with this tolerance (1 microsecond).
TOLERANCE = 1e-6


@dataclass(frozen=True)
class Rate:
    """``rate`` requests per ``window`` seconds, ``burst`` at once (default: ``rate``)."""

    rate: int
    window: float
    burst: int
    # T: seconds between two requests at the sustained rate.
    interval: float = field(init=False, repr=False)
    # burst * T: how far ahead of ``now`` the TAT may run.
    span: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.rate < 1 or self.window <= 0 or self.burst < 1:
            raise ValueError("a rate needs rate >= 1, window > 0 and burst >= 1")
        # Computed once: every decision uses both.
        object.__setattr__(self, "interval", self.window / self.rate)
        object.__setattr__(self, "span", self.burst * self.interval)


class Decision(NamedTuple):
    # A tuple, not a dataclass: one is made per request, and a tuple is built fastest.
    allowed: bool
    # Requests that would still be admitted right now, after this one.
    remaining: int
    # Seconds until one more request would be admitted (Retry-After when refused).
    retry_after: float
    # The TAT to store when admitted; None when refused (nothing changes).
    new_tat: float | None


def decide(rate: Rate, tat: float | None, now: float) -> Decision:
    """Admit or refuse one request for a key whose stored TAT is ``tat`` (None: unseen)."""
    start = now if tat is None else max(tat, now)
    new_tat = start + rate.interval
    allow_at = new_tat - rate.span
    if allow_at > now + TOLERANCE:
        return Decision(False, 0, allow_at - now, None)
    return Decision(True, remaining(rate, new_tat, now), next_unit(rate, new_tat, now), new_tat)


def remaining(rate: Rate, tat: float, now: float) -> int:
    """How many more requests fit right now with this TAT."""
    slack = now - (max(tat, now) - rate.span)
    return max(0, math.floor(slack / rate.interval + 1e-9))


def next_unit(rate: Rate, tat: float, now: float) -> float:
    """Seconds until the admitted count grows by one (0 < result <= T)."""
    slack = now - (max(tat, now) - rate.span)
    return rate.interval - (slack % rate.interval) if slack >= 0 else -slack
