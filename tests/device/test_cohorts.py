"""Sticky percentage cohorts: the bucket formula, stickiness, rollout sizes and
independence between salts."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.device.cohorts import bucket, in_cohort, listed_client, listed_version
from bastion.errors import InvalidValue

IDS = [f"user-{n}" for n in range(20_000)]


def expected_bucket(identifier: str, salt: str) -> int:
    # The first 8 bytes of SHA-256(salt ":" identifier), big-endian unsigned, mod 10000.
    digest = hashlib.sha256(salt.encode("utf-8") + b":" + identifier.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], byteorder="big", signed=False) % 10_000


@pytest.mark.parametrize(
    ("identifier", "salt"),
    [("alice", "device-trust"), ("", ""), ("user-1", "s"), ("ünïcode", "sel:2"), ("a:b", "c")],
)
def test_bucket_is_the_documented_formula(identifier: str, salt: str) -> None:
    assert bucket(identifier, salt) == expected_bucket(identifier, salt)


def test_bucket_values_are_pinned() -> None:
    # Remote configuration reuses these buckets: the values themselves must not move.
    assert [bucket(f"user-{n}", "rollout") for n in range(3)] == [
        expected_bucket(f"user-{n}", "rollout") for n in range(3)
    ]
    # int.from_bytes(sha256(b"s:alice").digest()[:8], "big") % 10000, worked out apart.
    assert bucket("alice", "s") == 163


@given(identifier=st.text(), salt=st.text(), percent=st.floats(min_value=0, max_value=100))
def test_cohorts_are_sticky(identifier: str, salt: str, percent: float) -> None:
    assert 0 <= bucket(identifier, salt) < 10_000
    assert bucket(identifier, salt) == bucket(identifier, salt)
    assert in_cohort(identifier, salt, percent) == in_cohort(identifier, salt, percent)
    # Raising the percentage only adds identifiers.
    if in_cohort(identifier, salt, percent):
        assert in_cohort(identifier, salt, min(100.0, percent + 0.5))


def test_a_ten_percent_rollout_admits_ten_percent() -> None:
    admitted = sum(in_cohort(identifier, "rollout", 10) for identifier in IDS)
    assert 0.09 * len(IDS) <= admitted <= 0.11 * len(IDS)


def test_zero_admits_none_and_hundred_admits_all() -> None:
    assert not any(in_cohort(identifier, "rollout", 0) for identifier in IDS)
    assert all(in_cohort(identifier, "rollout", 100) for identifier in IDS)
    assert all(in_cohort(identifier, "rollout", 100.0) for identifier in IDS[:100])


def test_percent_counts_hundredths_exactly() -> None:
    # 0.1 % is buckets 0 to 9, although the float 0.1 * 100 is just above 10.
    candidates = [f"id-{n}" for n in range(100_000)]
    nine = next(i for i in candidates if bucket(i, "rollout") == 9)
    ten = next(i for i in candidates if bucket(i, "rollout") == 10)
    assert in_cohort(nine, "rollout", 0.1)
    assert not in_cohort(ten, "rollout", 0.1)
    assert in_cohort(ten, "rollout", 0.11)


def test_different_salts_draw_independent_cohorts() -> None:
    first = {i for i in IDS if in_cohort(i, "first", 10)}
    second = {i for i in IDS if in_cohort(i, "second", 10)}
    # Independent 10 % cohorts share about 1 % of the population.
    assert 0.007 * len(IDS) <= len(first & second) <= 0.013 * len(IDS)


@pytest.mark.parametrize("percent", [-0.01, 100.01, float("nan"), float("inf"), True, "10"])
def test_a_percentage_outside_0_to_100_is_refused(percent: object) -> None:
    with pytest.raises(InvalidValue):
        in_cohort("alice", "s", percent)  # type: ignore[arg-type]


def test_listed_clients_and_versions() -> None:
    assert listed_client("app-1", {"app-1", "app-2"})
    assert not listed_client("app-3", ("app-1",))
    assert not listed_client("App-1", ["app-1"])
    assert listed_version("2.4.1", ["2.4.1 ", "2.5.0"])
    assert not listed_version("2.4", ["2.4.1"])
    assert not listed_version(None, ["2.4.1"])
