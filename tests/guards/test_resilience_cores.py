"""Retry timing and budget, and the circuit breaker's state machine (no I/O)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from bastion.guards.breaker import Breaker, BreakerPolicy, State
from bastion.guards.retries import RetryBudget, RetryPolicy, retry_after, retryable


@given(st.integers(0, 20), st.integers(0, 2**32))
def test_backoff_is_full_jitter_under_the_cap(attempt: int, seed: int) -> None:
    policy = RetryPolicy(base=0.05, cap=1.0)
    wait = policy.backoff(attempt, random.Random(seed))
    assert 0 <= wait <= min(1.0, 0.05 * 2**attempt)


def test_only_idempotent_or_keyed_requests_are_retried() -> None:
    """RFC 9110 §9.2.2."""
    assert retryable("GET", keyed=False)
    assert retryable("PUT", keyed=False)
    assert not retryable("POST", keyed=False)
    assert not retryable("PATCH", keyed=False)
    assert retryable("POST", keyed=True)


def test_retry_after_forms() -> None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date."""
    assert retry_after("7", now=0) == 7.0
    assert retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0) == 6.0
    assert retry_after("soon", now=0) is None
    assert retry_after(None, now=0) is None
    # delay-seconds is ASCII digits only: a superscript two is a digit to str.isdigit,
    # and must not reach float() (an upstream's header would turn into a crash).
    assert retry_after("\u00b2", now=0) is None
    assert retry_after("\u0663", now=0) is None


def test_budget_bounds_retries_to_a_fraction_of_requests() -> None:
    budget = RetryBudget(RetryPolicy(budget_ratio=0.1, budget_floor=0.0))
    granted = 0
    for i in range(1000):
        budget.deposit(now=i * 0.001)
        if budget.withdraw(now=i * 0.001):
            granted += 1
    assert 95 <= granted <= 100


def test_budget_floor_allows_a_few_retries_per_second() -> None:
    budget = RetryBudget(RetryPolicy(budget_ratio=0.0, budget_floor=2.0))
    assert [budget.withdraw(now=0.0) for _ in range(3)] == [True, True, False]
    assert budget.withdraw(now=0.5)
    assert not budget.withdraw(now=0.5)


def test_breaker_opens_on_consecutive_failures_and_probes() -> None:
    breaker = Breaker(BreakerPolicy(consecutive_failures=3, open_for=10, probes=1))
    for _ in range(2):
        assert breaker.allow(0)
        assert not breaker.record(False, 0)
    assert breaker.allow(0)
    assert breaker.record(False, 0)
    assert breaker.state == State.OPEN
    assert not breaker.allow(5)
    assert breaker.retry_after(5) == 5
    assert breaker.allow(10)  # half-open: one probe
    assert str(breaker.state) == "half-open"
    assert not breaker.allow(10)
    assert breaker.record(False, 10)  # the probe failed: open again
    assert not breaker.allow(15)
    assert breaker.allow(20)
    breaker.record(True, 20)
    assert str(breaker.state) == "closed"
    assert breaker.allow(20)


def test_breaker_opens_on_failure_rate_over_the_window() -> None:
    breaker = Breaker(BreakerPolicy(consecutive_failures=100, failure_rate=0.5, min_requests=10))
    for i in range(9):
        breaker.record(i % 2 == 0, float(i))
    assert breaker.state == State.CLOSED  # below min_requests
    breaker.record(False, 9.0)
    assert str(breaker.state) == "open"
    # Old outcomes leave the window.
    fresh = Breaker(BreakerPolicy(consecutive_failures=100, min_requests=4, window=10))
    for i in range(3):
        fresh.record(False, float(i))
    fresh.record(True, 100.0)
    assert fresh.state is State.CLOSED


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 5)), max_size=300))
def test_running_counts_match_a_recount(outcomes: list[tuple[bool, float]]) -> None:
    """The breaker's O(1) counts equal a recount of the outcomes in its window (whole
    seconds) after every step."""
    policy = BreakerPolicy(consecutive_failures=10**6, min_requests=10**6, window=10)
    breaker = Breaker(policy)
    now = 0.0
    seen: list[tuple[int, bool]] = []
    for success, gap in outcomes:
        now += gap
        breaker.record(success, now)
        seen.append((int(now), success))
        window = [ok for second, ok in seen if second >= int(now) - 10]
        assert breaker._total == len(window)
        assert breaker._failures == sum(1 for ok in window if not ok)


def test_a_probe_that_never_reports_does_not_wedge_the_breaker() -> None:
    breaker = Breaker(BreakerPolicy(consecutive_failures=1, open_for=10, probes=1))
    breaker.record(False, 0)
    assert breaker.allow(10)  # the probe goes out ... and is never heard of again
    assert not breaker.allow(15)
    assert breaker.allow(20)  # after another open_for, a new probe is allowed
