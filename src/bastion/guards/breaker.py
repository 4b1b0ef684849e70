"""A circuit breaker per upstream, as a state machine (no I/O; ``now`` is given).

    closed ──(N consecutive failures, or failure rate >= threshold over the window
              with at least min_requests)──▶ open
    open ──(open_for elapsed)──▶ half-open: up to ``probes`` requests pass
    half-open ──(a probe succeeds)──▶ closed;  ──(a probe fails)──▶ open again

While open, requests are refused at once (503 with Retry-After) instead of waiting on
an upstream that is down, which also gives it room to recover. When several processes
run, the open state is shared through hot state (``bastion.guards.resilience``), so one
process tripping spares the others the same failures.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass


class State(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True)
class BreakerPolicy:
    consecutive_failures: int = 5
    failure_rate: float = 0.5
    window: float = 30.0
    min_requests: int = 20
    open_for: float = 10.0
    probes: int = 1


class Breaker:
    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.state = State.CLOSED
        self.opened_at = 0.0
        self._consecutive = 0
        # Outcomes inside the window, counted per second with running totals: O(1) per
        # request however busy the upstream (a sum over every outcome in the window cost
        # a busy gateway most of its time). Each bucket is [second, total, failures].
        self._buckets: deque[list[int]] = deque()
        self._total = 0
        self._failures = 0
        self._probes_out = 0
        self._half_opened_at = 0.0

    def allow(self, now: float) -> bool:
        """Whether a request may go to the upstream now (a probe counts as one)."""
        if self.state is State.OPEN:
            if now - self.opened_at < self.policy.open_for:
                return False
            self.state = State.HALF_OPEN
            self._probes_out = 0
            self._half_opened_at = now
        if self.state is State.HALF_OPEN:
            if self._probes_out >= self.policy.probes:
                if now - self._half_opened_at < self.policy.open_for:
                    return False
                # A probe that never reported (cancelled, crashed): probe again.
                self._probes_out = 0
                self._half_opened_at = now
            self._probes_out += 1
        return True

    def retry_after(self, now: float) -> float:
        return max(0.0, self.opened_at + self.policy.open_for - now)

    def record(self, success: bool, now: float) -> bool:
        """Count an outcome; True when this outcome opened the breaker."""
        if self.state is State.HALF_OPEN:
            self._probes_out = max(0, self._probes_out - 1)
            if success:
                self._reset()
                return False
            self.trip(now)
            return True
        if self.state is State.OPEN:
            return False
        self._consecutive = 0 if success else self._consecutive + 1
        second = int(now)
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            bucket = buckets[-1]
        else:
            bucket = [second, 0, 0]
            buckets.append(bucket)
            oldest = second - int(self.policy.window)
            while buckets[0][0] < oldest:
                _, total_gone, failures_gone = buckets.popleft()
                self._total -= total_gone
                self._failures -= failures_gone
        bucket[1] += 1
        self._total += 1
        if not success:
            bucket[2] += 1
            self._failures += 1
        elif self._consecutive == 0 and self._failures == 0:
            return False  # the common case: nothing failed lately
        failures = self._failures
        total = self._total
        if self._consecutive >= self.policy.consecutive_failures or (
            total >= self.policy.min_requests and failures / total >= self.policy.failure_rate
        ):
            self.trip(now)
            return True
        return False

    def trip(self, now: float) -> None:
        """Open now (also when another process reports the upstream down)."""
        self.state = State.OPEN
        self.opened_at = now
        self._forget()

    def _reset(self) -> None:
        self.state = State.CLOSED
        self._forget()

    def _forget(self) -> None:
        self._consecutive = 0
        self._buckets.clear()
        self._total = 0
        self._failures = 0
