"""GCRA arithmetic (ITU-T I.371): properties that hold for any sequence of requests."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from bastion.guards.gcra import Rate, decide

rates = st.builds(
    Rate,
    rate=st.integers(1, 50),
    window=st.sampled_from([0.5, 1.0, 10.0, 60.0]),
    burst=st.integers(1, 20),
)
gaps = st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=200)


def _run(rate: Rate, arrivals: list[float]) -> list[float]:
    tat = None
    admitted = []
    for now in arrivals:
        decision = decide(rate, tat, now)
        if decision.allowed:
            tat = decision.new_tat
            admitted.append(now)
    return admitted


def _arrivals(offsets: list[float]) -> list[float]:
    now, out = 1000.0, []
    for gap in offsets:
        now += gap
        out.append(now)
    return out


@given(rates, gaps)
def test_never_more_than_burst_plus_rate_over_any_interval(
    rate: Rate, offsets: list[float]
) -> None:
    admitted = _run(rate, _arrivals(offsets))
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            elapsed = admitted[j] - start
            count = j - i + 1
            assert count <= rate.burst + math.floor(elapsed / rate.interval + 1e-6)


@given(rates)
def test_a_fresh_key_admits_exactly_the_burst_at_once(rate: Rate) -> None:
    admitted = _run(rate, [5.0] * (rate.burst + 5))
    assert len(admitted) == rate.burst


@given(rates, st.integers(1, 100))
def test_sustained_rate_is_admitted(rate: Rate, count: int) -> None:
    """Requests spaced exactly one interval apart are never refused."""
    arrivals = [100.0 + i * rate.interval for i in range(count)]
    assert len(_run(rate, arrivals)) == count


@given(rates, gaps)
def test_remaining_and_retry_after_are_consistent(rate: Rate, offsets: list[float]) -> None:
    tat = None
    for now in _arrivals(offsets):
        decision = decide(rate, tat, now)
        assert 0 <= decision.remaining <= rate.burst - 1
        assert decision.retry_after >= 0
        if decision.allowed:
            tat = decision.new_tat
        else:
            # Waiting exactly the advertised time is enough.
            assert decide(rate, tat, now + decision.retry_after + 1e-9).allowed
