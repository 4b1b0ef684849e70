"""Login throttling: NIST SP 800-63B §5.2.2 (rate limiting) and OWASP ASVS V2.2.1.

Tests that need time to pass use the memory store driven by a FixedClock. The others run
on memory and Redis; windowed keys follow the injected clock, so advancing it opens a new
window on both backends without waiting.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.accounts.throttle import (
    DISTRIBUTED_ATTACK_SUSPECTED,
    STUFFING_SUSPECTED,
    THROTTLED,
    LoginThrottle,
    ThrottleLimits,
    Verdict,
    account_delay,
    account_id,
    source_id,
)
from bastion.audit import AuditPipeline, MemorySink
from bastion.clock import FixedClock
from bastion.errors import StoreUnavailable
from bastion.store.memory.hot import MemoryHotStore
from bastion.store.protocols import HotStore
from bastion.store.redis.hot import RedisHotStore
from tests.support.services import free_port

VICTIM = "victim.person@example.org"
PASSWORD = "correct horse battery staple"
IP = "192.0.2.10"

# Small numbers so that each rule is reached in a few steps, and never by accident.
SMALL = ThrottleLimits(
    account_free_failures=3,
    account_base_delay=1.0,
    account_max_delay=8.0,
    account_window=60.0,
    ip_failures=20,
    ip_window=600.0,
    global_failures=100,
    global_window=60.0,
    spray_accounts_per_ip=4,
    stuffing_ips_per_account=4,
)


def throttle(
    hot: HotStore, clock: FixedClock, limits: ThrottleLimits = SMALL
) -> tuple[LoginThrottle, MemorySink]:
    sink = MemorySink()
    return LoginThrottle(hot, clock, limits, AuditPipeline([sink], clock=clock)), sink


def throttled(sink: MemorySink) -> list[dict[str, Any]]:
    """The ``login.throttled`` records, each checked to hold no username or password."""
    records = [r for r in sink.records if r["action"] == THROTTLED]
    for record in records:
        text = orjson.dumps(record).decode()
        assert VICTIM not in text
        assert VICTIM.split("@")[0] not in text
        assert PASSWORD not in text
        assert record["outcome"] == "denied"
        assert record["actor"] == "browser"
    return records


async def fail(guard: LoginThrottle, times: int, username: str = VICTIM, ip: str = IP) -> None:
    for _ in range(times):
        await guard.failure(username, ip)


@pytest.fixture
def memory(clock: FixedClock) -> MemoryHotStore:
    """A memory store whose expiries follow the test's clock."""
    return MemoryHotStore(clock)


# --- The arithmetic ------------------------------------------------------------------------------


@st.composite
def limits(draw: st.DrawFn) -> ThrottleLimits:
    positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)
    base = draw(positive)
    cap = draw(st.floats(min_value=base, max_value=1e7))
    return ThrottleLimits(
        account_free_failures=draw(st.integers(min_value=1, max_value=100)),
        account_base_delay=base,
        account_max_delay=cap,
        account_window=draw(st.floats(min_value=cap, max_value=1e8)),
    )


@given(limits=limits(), failures=st.integers(min_value=-10, max_value=10**9))
def test_account_delay_is_zero_then_monotonic_and_capped(
    limits: ThrottleLimits, failures: int
) -> None:
    """NIST SP 800-63B §5.2.2: slow the attacker down, never lock the owner out for good."""
    delay = account_delay(failures, limits)
    following = account_delay(failures + 1, limits)
    assert 0.0 <= delay <= following <= limits.account_max_delay
    if failures < limits.account_free_failures:
        assert delay == 0.0
    else:
        assert delay >= limits.account_base_delay
        exponent = failures - limits.account_free_failures
        if exponent < 60:
            expected = min(limits.account_max_delay, limits.account_base_delay * 2**exponent)
            assert delay == pytest.approx(expected)


def test_account_delay_defaults() -> None:
    defaults = ThrottleLimits()
    assert [account_delay(n, defaults) for n in range(4, 15)] == [
        0.0,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        32.0,
        64.0,
        128.0,
        256.0,
        300.0,
    ]
    assert account_delay(10**100, defaults) == 300.0


NAMES = [name for name in ThrottleLimits.__dataclass_fields__]
bad_value = st.sampled_from([0, -1, 0.0, -0.5, float("nan"), float("inf"), True, "5", 10**400])


@given(name=st.sampled_from(NAMES), value=bad_value)
def test_limits_refuse_non_positive_or_non_numeric_values(name: str, value: object) -> None:
    arguments: dict[str, Any] = {name: value}
    with pytest.raises(ValueError, match=name):
        ThrottleLimits(**arguments)


@given(
    name=st.sampled_from([n for n in NAMES if ThrottleLimits.__dataclass_fields__[n].type == "int"])
)
def test_limits_refuse_fractional_counts(name: str) -> None:
    arguments: dict[str, Any] = {name: 2.5}
    with pytest.raises(ValueError, match=name):
        ThrottleLimits(**arguments)


@given(
    base=st.floats(min_value=1.0, max_value=1e6), excess=st.floats(min_value=1e-3, max_value=1e6)
)
def test_limits_refuse_inconsistent_delays(base: float, excess: float) -> None:
    with pytest.raises(ValueError, match="account_base_delay"):
        ThrottleLimits(account_base_delay=base + excess, account_max_delay=base)
    # A delay longer than the count's memory would hand out the free failures again.
    with pytest.raises(ValueError, match="account_max_delay"):
        ThrottleLimits(account_max_delay=base + excess, account_window=base)


@pytest.mark.parametrize("guesses", [1, 5, 6, 12, 40])
async def test_guess_rate_is_bounded_by_the_sum_of_delays(
    memory: MemoryHotStore, clock: FixedClock, guesses: int
) -> None:
    """NIST SP 800-63B §5.2.2: an attacker retrying as soon as allowed needs at least the
    sum of the delays earned so far to make each further guess."""
    guard, _ = throttle(memory, clock, ThrottleLimits())
    start, made = clock.now(), 0
    while made < guesses:
        verdict = await guard.check(VICTIM, IP, device_trusted=False)
        if verdict.allowed:
            await guard.failure(VICTIM, IP)
            made += 1
        else:
            assert verdict.reason == "account"
            clock.advance(verdict.retry_after)
    owed = sum(account_delay(k, ThrottleLimits()) for k in range(1, guesses))
    assert clock.now() - start == pytest.approx(owed)


# --- The account rule ----------------------------------------------------------------------------


async def test_account_is_delayed_after_the_free_failures_then_released(
    memory: MemoryHotStore, clock: FixedClock
) -> None:
    """NIST SP 800-63B §5.2.2 and OWASP ASVS V2.2.1: a delay, not a lockout."""
    guard, sink = throttle(memory, clock)
    await fail(guard, SMALL.account_free_failures - 1)
    assert (await guard.check(VICTIM, IP, device_trusted=False)).allowed
    await guard.failure(VICTIM, IP)
    verdict = await guard.check(VICTIM, IP, device_trusted=False)
    assert verdict == Verdict(False, "account", SMALL.account_base_delay)
    clock.advance(SMALL.account_base_delay - 0.01)
    assert not (await guard.check(VICTIM, IP, device_trusted=False)).allowed
    clock.advance(0.01)
    assert (await guard.check(VICTIM, IP, device_trusted=False)).allowed
    records = throttled(sink)
    assert [r["details"]["reason"] for r in records] == ["account", "account"]
    assert records[0]["details"] == {
        "reason": "account",
        "ip": IP,
        "account": account_id(VICTIM)[:16],
        "retry_after": 1,
    }


async def test_the_delay_never_exceeds_the_cap(memory: MemoryHotStore, clock: FixedClock) -> None:
    """The attacker can delay the owner by at most account_max_delay after each failure."""
    guard, sink = throttle(memory, clock, replace(SMALL, ip_failures=1000))
    free = SMALL.account_free_failures
    await fail(guard, free - 1)
    for _ in range(50):
        await guard.failure(VICTIM, IP)
        verdict = await guard.check(VICTIM, IP, device_trusted=False)
        assert not verdict.allowed
        assert 0 < verdict.retry_after <= SMALL.account_max_delay
    assert verdict.retry_after == SMALL.account_max_delay
    clock.advance(SMALL.account_max_delay)
    assert (await guard.check(VICTIM, IP, device_trusted=False)).allowed
    assert len(throttled(sink)) == 50


async def test_the_count_is_forgotten_a_window_after_the_last_failure(
    memory: MemoryHotStore, clock: FixedClock
) -> None:
    guard, _ = throttle(memory, clock)
    free = SMALL.account_free_failures
    await fail(guard, free - 1)
    # Each failure restarts the window, so a slow attacker is still counted.
    clock.advance(SMALL.account_window - 1)
    await guard.failure(VICTIM, IP)
    assert (await guard.check(VICTIM, IP, device_trusted=False)).reason == "account"
    clock.advance(SMALL.account_window)
    # All forgotten: the owner has the free failures again.
    await fail(guard, free - 1)
    assert (await guard.check(VICTIM, IP, device_trusted=False)).allowed


async def test_concurrent_checks_cannot_share_one_delay(hot_store: HotStore) -> None:
    """Once a failure would earn a delay, only one of many parallel attempts gets through."""
    guard, sink = throttle(hot_store, FixedClock())
    await fail(guard, SMALL.account_free_failures - 1)
    verdicts = await asyncio.gather(
        *(guard.check(VICTIM, IP, device_trusted=False) for _ in range(10))
    )
    assert sum(v.allowed for v in verdicts) == 1
    assert {v.reason for v in verdicts if not v.allowed} == {"account"}
    assert len(throttled(sink)) == 9


async def test_success_clears_the_account_delay(hot_store: HotStore) -> None:
    guard, _ = throttle(hot_store, FixedClock())
    await fail(guard, SMALL.account_free_failures + 2)
    assert (await guard.check(VICTIM, IP, device_trusted=False)).reason == "account"
    await guard.success(VICTIM, IP)
    assert (await guard.check(VICTIM, IP, device_trusted=False)).allowed
    # The count went too: the next failure is a free one again.
    await guard.success(VICTIM, IP)
    await guard.failure(VICTIM, IP)
    assert (await guard.check(VICTIM, IP, device_trusted=False)).allowed


async def test_a_trusted_device_skips_the_account_delay_but_not_the_ip_rule(
    hot_store: HotStore,
) -> None:
    """OWASP device cookies: an attacker delaying an account does not lock its owner out."""
    limits = ThrottleLimits(ip_failures=8, account_free_failures=2)
    guard, sink = throttle(hot_store, FixedClock(), limits)
    attacker = "198.51.100.7"
    await fail(guard, 6, ip=attacker)
    assert (await guard.check(VICTIM, IP, device_trusted=False)).reason == "account"
    assert (await guard.check(VICTIM, IP, device_trusted=True)).allowed
    await fail(guard, 2, ip=attacker)
    verdict = await guard.check(VICTIM, attacker, device_trusted=True)
    assert (verdict.allowed, verdict.reason) == (False, "ip")
    assert [r["details"]["reason"] for r in throttled(sink)] == ["account", "ip"]


async def test_known_and_unknown_usernames_are_throttled_alike(hot_store: HotStore) -> None:
    """OWASP ASVS V2.2.1 without enumeration: the throttle never looks a user up, so its
    answers for an account that exists and one that does not are the same."""

    async def run(username: str) -> list[Verdict]:
        guard, _ = throttle(hot_store, FixedClock())
        seen = []
        for _ in range(SMALL.account_free_failures + 3):
            seen.append(await guard.check(username, IP, device_trusted=False))
            await guard.failure(username, IP)
        return seen

    existing, missing = await run(VICTIM), await run("nobody-by-this-name@example.org")
    assert [(v.allowed, v.reason) for v in existing] == [(v.allowed, v.reason) for v in missing]
    assert [v.retry_after for v in existing] == pytest.approx(
        [v.retry_after for v in missing], abs=0.5
    )


async def test_spelling_variants_of_a_username_share_one_count(hot_store: HotStore) -> None:
    """Case and Unicode compatibility forms cannot be used to get fresh free failures."""
    guard, _ = throttle(hot_store, FixedClock())
    fullwidth = "".join(chr(ord(c) - ord("a") + ord("\uff41")) for c in "victim")
    for name in ["Victim", "VICTIM", fullwidth]:
        await guard.failure(name, IP)
    assert (await guard.check("victim", IP, device_trusted=False)).reason == "account"
    assert account_id("Victim") == account_id(fullwidth)
    assert "victim" not in account_id("victim")
    account_id("\ud800")  # A lone surrogate from a malformed form is still keyed.


# --- Sources, spraying, distributed attacks, the global rule -------------------------------------


async def test_a_source_over_its_failure_limit_is_refused_until_its_window_ends(
    hot_store: HotStore,
) -> None:
    limits = ThrottleLimits(ip_failures=5)
    clock = FixedClock()
    guard, sink = throttle(hot_store, clock, limits)
    await fail(guard, 5)
    verdict = await guard.check("someone-else", IP, device_trusted=False)
    assert (verdict.allowed, verdict.reason) == (False, "ip")
    assert 0 < verdict.retry_after <= limits.ip_window
    assert (await guard.check("someone-else", "192.0.2.11", device_trusted=False)).allowed
    clock.advance(verdict.retry_after)
    assert (await guard.check("someone-else", IP, device_trusted=False)).allowed
    assert [r["details"]["reason"] for r in throttled(sink)] == ["ip"]


async def test_ipv6_sources_are_grouped_by_their_64_block(hot_store: HotStore) -> None:
    guard, _ = throttle(hot_store, FixedClock(), ThrottleLimits(ip_failures=3))
    for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"]:
        await guard.failure(VICTIM, host)
    assert (await guard.check("x", "2001:db8:1:2::77", device_trusted=True)).reason == "ip"
    assert (await guard.check("x", "2001:db8:1:3::1", device_trusted=True)).allowed
    assert source_id("::ffff:192.0.2.1") == "192.0.2.1"
    assert source_id("testclient") == "testclient"


async def test_one_source_trying_many_accounts_is_refused_and_reported_once(
    hot_store: HotStore,
) -> None:
    """Credential stuffing and password spraying (OWASP ASVS V2.2.1): one source, many
    accounts, few tries each, so that no account rule ever fires."""
    guard, sink = throttle(hot_store, FixedClock())
    for n in range(SMALL.spray_accounts_per_ip):
        await guard.failure(f"user{n}", IP)
        await guard.failure(f"user{n}", IP)  # The same pair again is not a new account.
    verdict = await guard.check("fresh-user", IP, device_trusted=True)
    assert (verdict.allowed, verdict.reason) == (False, "spray")
    assert (await guard.check("fresh-user", "192.0.2.99", device_trusted=False)).allowed
    await fail(guard, 1, username="one-more", ip=IP)
    suspected = [r for r in sink.records if r["action"] == STUFFING_SUSPECTED]
    assert len(suspected) == 1
    assert suspected[0]["details"] == {"ip": IP, "accounts": SMALL.spray_accounts_per_ip}
    assert [r["details"]["reason"] for r in throttled(sink)] == ["spray"]


async def test_many_sources_trying_one_account_are_reported_once(hot_store: HotStore) -> None:
    guard, sink = throttle(hot_store, FixedClock())
    for n in range(SMALL.stuffing_ips_per_account + 3):
        await guard.failure(VICTIM, f"203.0.113.{n}")
    suspected = [r for r in sink.records if r["action"] == DISTRIBUTED_ATTACK_SUSPECTED]
    assert len(suspected) == 1
    assert suspected[0]["outcome"] == "denied"
    assert suspected[0]["details"] == {
        "account": account_id(VICTIM)[:16],
        "sources": SMALL.stuffing_ips_per_account,
    }
    assert VICTIM not in orjson.dumps(sink.records).decode()


async def test_the_global_limit_refuses_untrusted_browsers_for_the_window(
    hot_store: HotStore,
) -> None:
    """NIST SP 800-63B §5.2.2: bound the total guess rate of an attacker with many sources."""
    limits = ThrottleLimits(global_failures=6, global_window=60.0)
    clock = FixedClock()
    guard, sink = throttle(hot_store, clock, limits)
    for n in range(6):
        await guard.failure(f"user{n}", f"203.0.113.{n}")
    verdict = await guard.check(VICTIM, IP, device_trusted=False)
    assert (verdict.allowed, verdict.reason) == (False, "global")
    assert 0 < verdict.retry_after <= limits.global_window
    assert (await guard.check(VICTIM, IP, device_trusted=True)).allowed
    clock.advance(verdict.retry_after)
    assert (await guard.check(VICTIM, IP, device_trusted=False)).allowed
    assert [r["details"]["reason"] for r in throttled(sink)] == ["global"]


async def test_allowed_attempts_and_failures_below_thresholds_emit_nothing(
    hot_store: HotStore,
) -> None:
    guard, sink = throttle(hot_store, FixedClock())
    assert await guard.check(VICTIM, IP, device_trusted=False) == Verdict(True, None, 0.0)
    await fail(guard, SMALL.account_free_failures - 1)
    await guard.success(VICTIM, IP)
    assert sink.records == []


# --- Failing closed ------------------------------------------------------------------------------


async def test_an_unreachable_store_raises_so_the_login_fails_closed() -> None:
    store = RedisHotStore(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.5)
    guard, sink = throttle(store, FixedClock())
    try:
        with pytest.raises(StoreUnavailable):
            await guard.check(VICTIM, IP, device_trusted=False)
        with pytest.raises(StoreUnavailable):
            await guard.check(VICTIM, IP, device_trusted=True)
        with pytest.raises(StoreUnavailable):
            await guard.failure(VICTIM, IP)
        with pytest.raises(StoreUnavailable):
            await guard.success(VICTIM, IP)
    finally:
        await store.close()
    assert sink.records == []
