"""The risk engine core: monotone under any policy, audit mode enforcing nothing, the
outage fallback, and reasons naming every signal that raised the risk."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.device.risk import (
    Action,
    AttestationLevel,
    PlayProtect,
    Policy,
    Signals,
    assess,
    no_riskier,
    policy_problems,
)

# The least risky value of every signal.
SAFE = Signals(
    attestation=AttestationLevel.STRONG,
    attestation_age=0,
    attestation_unavailable=False,
    app_recognized=True,
    licensed=True,
    app_access_risk=frozenset(),
    play_protect=PlayProtect.NO_ISSUES,
    dpop_bound=True,
    app_outdated=False,
    app_unreleased=False,
    new_device=False,
    counter_anomaly=False,
    impossible_velocity=False,
    failed_sign_ins=0,
    rate_limited=0,
    detector_flags=frozenset(),
)
# The reason word of each signal (detectors: one reason per flag).
REASONS = {
    "attestation": "attestation",
    "attestation_age": "attestation_age",
    "app_recognized": "app_recognition",
    "licensed": "licensing",
    "app_access_risk": "app_access_risk",
    "play_protect": "play_protect",
    "dpop_bound": "not_dpop_bound",
    "app_outdated": "app_outdated",
    "app_unreleased": "app_unreleased",
    "new_device": "new_device",
    "counter_anomaly": "counter_anomaly",
    "impossible_velocity": "impossible_velocity",
    "failed_sign_ins": "failed_sign_ins",
    "rate_limited": "rate_limited",
}

ACCESS_FLAGS = ("KNOWN_CAPTURING", "KNOWN_CONTROLLING", "UNKNOWN_OVERLAYS", "UNKNOWN_INSTALLED")
DETECTOR_FLAGS = ("emulator", "hooking", "proxy", "default")
TRISTATE = (True, None, False)  # least risky first

flags = st.frozensets(st.sampled_from(ACCESS_FLAGS))
detector_flags = st.frozensets(st.sampled_from(DETECTOR_FLAGS))
ages = st.none() | st.integers(min_value=0, max_value=10**8)
counts = st.integers(min_value=0, max_value=50)

signals = st.builds(
    Signals,
    attestation=st.sampled_from(AttestationLevel),
    attestation_age=ages,
    attestation_unavailable=st.booleans(),
    app_recognized=st.sampled_from(TRISTATE),
    licensed=st.sampled_from(TRISTATE),
    app_access_risk=flags,
    play_protect=st.sampled_from(PlayProtect),
    dpop_bound=st.booleans(),
    app_outdated=st.booleans(),
    app_unreleased=st.booleans(),
    new_device=st.booleans(),
    counter_anomaly=st.booleans(),
    impossible_velocity=st.booleans(),
    failed_sign_ins=counts,
    rate_limited=counts,
    detector_flags=detector_flags,
)


def worse(data: st.DataObject, s: Signals) -> Signals:
    """A draw of signals each at least as risky as the same signal of ``s``."""

    def at_least(value: bool) -> bool:
        return value or data.draw(st.booleans())

    def later(age: int | None) -> int | None:
        if age is None:
            return None
        return data.draw(st.none() | st.integers(min_value=age, max_value=age + 10**8))

    def tristate(value: bool | None) -> bool | None:
        return data.draw(st.sampled_from(TRISTATE[TRISTATE.index(value) :]))

    return Signals(
        attestation=data.draw(st.sampled_from(list(AttestationLevel)[: s.attestation + 1])),
        attestation_age=later(s.attestation_age),
        attestation_unavailable=at_least(s.attestation_unavailable),
        app_recognized=tristate(s.app_recognized),
        licensed=tristate(s.licensed),
        app_access_risk=s.app_access_risk | data.draw(flags),
        play_protect=data.draw(st.sampled_from(list(PlayProtect)[s.play_protect :])),
        dpop_bound=s.dpop_bound and data.draw(st.booleans()),
        app_outdated=at_least(s.app_outdated),
        app_unreleased=at_least(s.app_unreleased),
        new_device=at_least(s.new_device),
        counter_anomaly=at_least(s.counter_anomaly),
        impossible_velocity=at_least(s.impossible_velocity),
        failed_sign_ins=s.failed_sign_ins + data.draw(counts),
        rate_limited=s.rate_limited + data.draw(counts),
        detector_flags=s.detector_flags | data.draw(detector_flags),
    )


def policies(least_bound: int = -5) -> st.SearchStrategy[Policy]:
    """Any policy, including ones ``policy_problems`` refuses (negative points,
    thresholds out of order, unknown grades): ``assess`` must stay monotone anyway."""

    points = st.integers(min_value=-20, max_value=120)
    bound = st.integers(min_value=least_bound, max_value=10**7)

    def table(keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, int]]:
        return st.dictionaries(st.sampled_from(keys), points)

    pairs = st.lists(st.tuples(bound, points), max_size=4).map(tuple)
    threshold = st.integers(min_value=-10, max_value=400)
    return st.builds(
        Policy,
        mode=st.sampled_from(("enforce", "audit")),
        outage=st.sampled_from(Action),
        limit_at=threshold,
        step_up_at=threshold,
        deny_at=threshold,
        attestation=table(("strong", "device", "basic", "none", "other")),
        attestation_age=pairs,
        app_recognition=table(("unknown", "unrecognized")),
        licensing=table(("unknown", "unlicensed")),
        app_access_risk=table(("default", *ACCESS_FLAGS)),
        play_protect=table(("no_issues", "unknown", "possible_risk", "medium_risk", "high_risk")),
        not_dpop_bound=points,
        app_outdated=points,
        app_unreleased=points,
        new_device=points,
        counter_anomaly=points,
        impossible_velocity=points,
        failed_sign_ins=pairs,
        rate_limited=pairs,
        detectors=table(DETECTOR_FLAGS),
    )


def test_actions_are_ordered_weakest_first() -> None:
    assert Action.ALLOW < Action.LIMIT < Action.STEP_UP < Action.DENY


def test_the_risk_order_is_reflexive_and_not_total() -> None:
    assert no_riskier(SAFE, SAFE)
    assert no_riskier(SAFE, Signals())
    assert not no_riskier(Signals(), SAFE)
    alarm, outdated = replace(SAFE, counter_anomaly=True), replace(SAFE, app_outdated=True)
    assert not no_riskier(alarm, outdated)
    assert not no_riskier(outdated, alarm)
    # Never attested is older than any age; a verdict that did not say sits between.
    assert no_riskier(replace(SAFE, attestation_age=10**9), replace(SAFE, attestation_age=None))
    assert no_riskier(replace(SAFE, licensed=None), replace(SAFE, licensed=False))
    assert not no_riskier(replace(SAFE, licensed=None), SAFE)


@settings(max_examples=300)
@given(data=st.data(), low=signals, policy=policies())
def test_more_risk_never_yields_a_weaker_answer(
    data: st.DataObject, low: Signals, policy: Policy
) -> None:
    high = worse(data, low)
    assert no_riskier(low, high)
    assert assess(low, policy).decided <= assess(high, policy).decided
    assert assess(low, policy).score <= assess(high, policy).score


@given(s=signals, policy=policies())
def test_audit_mode_decides_as_enforce_mode_and_enforces_nothing(
    s: Signals, policy: Policy
) -> None:
    audit = assess(s, replace(policy, mode="audit"))
    enforce = assess(s, replace(policy, mode="enforce"))
    assert audit.enforced == Action.ALLOW
    assert enforce.enforced == enforce.decided
    assert (audit.decided, audit.reasons, audit.score) == (
        enforce.decided,
        enforce.reasons,
        enforce.score,
    )
    assert (audit.mode, enforce.mode) == ("audit", "enforce")


@given(s=signals, policy=policies())
def test_an_outage_decides_at_least_the_fallback_and_never_fails(
    s: Signals, policy: Policy
) -> None:
    down = assess(replace(s, attestation_unavailable=True), policy)
    assert down.decided >= policy.outage
    assert down.reasons[-1] == "attestation_unavailable"
    up = assess(replace(s, attestation_unavailable=False), policy)
    assert "attestation_unavailable" not in up.reasons


def test_an_outage_steps_up_by_default_and_never_denies_by_itself() -> None:
    policy = replace(Policy(), mode="enforce")
    decision = assess(replace(SAFE, attestation_unavailable=True), policy)
    assert (decision.decided, decision.enforced) == (Action.STEP_UP, Action.STEP_UP)
    assert decision.reasons == ("attestation_unavailable",)
    # The last known attestation still counts: an outage does not wipe other risk.
    tampered = replace(SAFE, attestation_unavailable=True, counter_anomaly=True)
    assert assess(tampered, policy).decided == Action.DENY
    lenient = replace(policy, outage=Action.LIMIT)
    assert assess(replace(SAFE, attestation_unavailable=True), lenient).decided == Action.LIMIT
    # An unchecked configuration value is not an error either.
    for raw, action in (("limit", Action.LIMIT), ("bogus", Action.STEP_UP)):
        unchecked = replace(policy, outage=raw)  # type: ignore[arg-type]
        assert assess(replace(SAFE, attestation_unavailable=True), unchecked).decided == action
        assert policy_problems(unchecked) == (f"outage: {raw!r} is not an action",)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"attestation": AttestationLevel.BASIC}, "attestation"),
        ({"attestation_age": None}, "attestation_age"),
        ({"attestation_age": 90 * 86400}, "attestation_age"),
        ({"app_recognized": False}, "app_recognition"),
        ({"licensed": False}, "licensing"),
        ({"app_access_risk": frozenset({"KNOWN_CAPTURING"})}, "app_access_risk"),
        ({"play_protect": PlayProtect.HIGH_RISK}, "play_protect"),
        ({"dpop_bound": False}, "not_dpop_bound"),
        ({"app_outdated": True}, "app_outdated"),
        ({"app_unreleased": True}, "app_unreleased"),
        ({"new_device": True}, "new_device"),
        ({"counter_anomaly": True}, "counter_anomaly"),
        ({"impossible_velocity": True}, "impossible_velocity"),
        ({"failed_sign_ins": 3}, "failed_sign_ins"),
        ({"rate_limited": 1}, "rate_limited"),
        ({"detector_flags": frozenset({"emulator"})}, "detector:emulator"),
    ],
)
def test_each_signal_alone_names_itself(change: dict[str, Any], reason: str) -> None:
    decision = assess(replace(SAFE, **change), Policy())
    assert decision.reasons == (reason,)
    assert decision.score > 0


def test_the_safest_signals_are_allowed_without_reasons() -> None:
    decision = assess(SAFE, Policy())
    assert (decision.decided, decision.reasons, decision.score) == (Action.ALLOW, (), 0)


def test_several_weak_signals_add_up() -> None:
    # Each alone stays under step-up; together they reach it.
    policy = Policy()
    some = replace(SAFE, new_device=True, app_outdated=True, dpop_bound=False)
    assert assess(replace(SAFE, new_device=True), policy).decided == Action.ALLOW
    assert assess(replace(SAFE, app_outdated=True), policy).decided == Action.LIMIT
    decision = assess(some, policy)
    assert decision.decided == Action.STEP_UP
    assert decision.reasons == ("not_dpop_bound", "app_outdated", "new_device")


@given(s=signals, policy=policies(least_bound=1))
def test_reasons_name_exactly_the_signals_that_scored(s: Signals, policy: Policy) -> None:
    # With no count or age bound at zero, each signal's safest value scores nothing, so
    # a signal contributes exactly when resetting it to its safest value lowers the score.
    decision = assess(s, policy)
    contributing = []
    parts = 0
    for name, reason in REASONS.items():
        lower = assess(replace(s, **{name: getattr(SAFE, name)}), policy).score
        if lower < decision.score:
            contributing.append(reason)
        parts += decision.score - lower
    for flag in sorted(s.detector_flags):
        lower = assess(replace(s, detector_flags=s.detector_flags - {flag}), policy).score
        if lower < decision.score:
            contributing.append(f"detector:{flag}")
        parts += decision.score - lower
    if s.attestation_unavailable:
        contributing.append("attestation_unavailable")
    assert list(decision.reasons) == contributing
    assert parts == decision.score


def test_policy_problems() -> None:
    assert policy_problems(Policy()) == ()
    bad = Policy(
        mode="enfroce",  # type: ignore[arg-type]
        limit_at=70,
        step_up_at=60,
        attestation={"none": -1, "strong": 5},
        failed_sign_ins=((3, -10),),
        new_device=-5,
    )
    assert policy_problems(bad) == (
        "mode: 'enfroce' is neither 'enforce' nor 'audit'",
        "thresholds: limit_at <= step_up_at <= deny_at does not hold",
        "attestation: no grade 'strong'",
        "attestation.none: negative points",
        "failed_sign_ins: negative points at 3",
        "new_device: negative points",
    )
    # Fail closed: only the exact word "audit" stops enforcement, so a typo enforces.
    decision = assess(replace(SAFE, counter_anomaly=True), bad)
    assert (decision.decided, decision.enforced) == (Action.DENY, Action.DENY)


def test_enforcement_is_the_default_and_audit_the_opt_in() -> None:
    # Audit mode weakens the protection (it only reports), so it is never the default.
    risky = replace(SAFE, counter_anomaly=True)
    assert assess(risky, Policy()).enforced == Action.DENY
    assert assess(risky, replace(Policy(), mode="audit")).enforced == Action.ALLOW


def test_a_version_never_released_steps_up_by_itself() -> None:
    # A repackaged or tampered build reports a version the team never shipped: with the
    # default points it reaches step-up alone, and a policy may raise it to deny.
    decision = assess(replace(SAFE, app_unreleased=True), Policy())
    assert (decision.decided, decision.reasons) == (Action.STEP_UP, ("app_unreleased",))
    strict = replace(Policy(), app_unreleased=100)
    assert assess(replace(SAFE, app_unreleased=True), strict).decided == Action.DENY
