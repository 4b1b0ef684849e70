"""When and how long to wait before retrying an upstream call.

- Only idempotent methods (RFC 9110 §9.2.2) or requests carrying an idempotency key are
  retried, and only after failures that say nothing was done or that are worth another
  try: a refused connection, a reset, 502, 503, 504.
- Waits are exponential with full jitter (AWS Architecture Blog, "Exponential Backoff
  And Jitter"): uniform in [0, min(cap, base * 2**attempt)], so synchronized clients
  spread out instead of retrying in waves.
- An upstream's ``Retry-After`` (RFC 9110 §10.2.3) is honoured when it fits the cap;
  longer ones end the retries.
- A retry budget per upstream (as in Finagle and Envoy): every request deposits
  ``ratio`` of a retry, every retry withdraws one, with a small floor per second, so a
  failing upstream sees at most ``1 + ratio`` times its normal load, not ``attempts``
  times.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUS = frozenset({502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 2  # retries after the first try
    base: float = 0.05
    cap: float = 1.0
    budget_ratio: float = 0.2
    budget_floor: float = 3.0  # retries per second always allowed

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds before retry number ``attempt`` (0-based): full jitter."""
        return rng.uniform(0, min(self.cap, self.base * (2**attempt)))


def retryable(method: str, keyed: bool) -> bool:
    return method in IDEMPOTENT or keyed


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After value (delay-seconds or an HTTP-date), or None."""
    if not value:
        return None
    text = value.strip()
    # isdigit alone admits "²" and other digits float() refuses; delay-seconds is
    # ASCII DIGIT only (RFC 9110 §10.2.3).
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class RetryBudget:
    """Tokens earned by requests and spent by retries (pure arithmetic; ``now`` given).

    A deposit only counts (it runs on every request); the count is turned into a balance
    when a retry asks for one.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._balance = 0.0
        self._deposits = 0
        self._floor_balance = policy.budget_floor
        self._updated: float | None = None

    def deposit(self, now: float) -> None:
        self._deposits += 1

    def withdraw(self, now: float) -> bool:
        self._refill(now)
        if self._deposits:
            earned = self._deposits * self._policy.budget_ratio
            self._balance = min(self._balance + earned, 100.0)
            self._deposits = 0
        if self._balance >= 1.0:
            self._balance -= 1.0
            return True
        if self._floor_balance >= 1.0:
            self._floor_balance -= 1.0
            return True
        return False

    def _refill(self, now: float) -> None:
        if self._updated is not None:
            elapsed = max(0.0, now - self._updated)
            floor = self._policy.budget_floor
            self._floor_balance = min(floor, self._floor_balance + elapsed * floor)
        self._updated = now
