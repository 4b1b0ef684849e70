"""Device risk: the signals known about a request in, a decision with its reasons out.

Attestation fails for honest users too (old phones, custom ROMs, a vendor outage), so
the answer is graded, never a blanket block. The actions are ordered, weakest first::

    ALLOW < LIMIT < STEP_UP < DENY

``LIMIT`` comes first because the user keeps working: tokens get narrower scopes or
shorter lives, risky routes are refused. ``STEP_UP`` interrupts the user: an RFC 9470
challenge on a resource, or MFA at sign-in. ``DENY`` is last, kept for evidence of
tampering or abuse (a cloned key's counter going backwards, an impossible journey).

Scoring. Each signal scores points from the policy; the score is their sum, and the
decided action is the strongest one whose threshold (``limit_at``, ``step_up_at``,
``deny_at``) the score reaches. A signal that must decide alone (a counter anomaly that
denies) scores at least the threshold of its action. When attestation could not be
verified at all (``attestation_unavailable``: the vendor or the verifier is down), the
decision is at least ``policy.outage`` (``STEP_UP`` unless configured): an outage never
raises an error, and denies by itself only where ``outage = "deny"`` says so. ``reasons``
names every signal that scored points, in a fixed order, then
``attestation_unavailable`` during an outage.

Monotonicity. ``no_riskier(a, b)`` is a partial order: every signal of ``b`` is worse
than or equal to the same signal of ``a``. Whatever the policy, ``no_riskier(a, b)``
implies ``assess(a, p).decided <= assess(b, p).decided``. That holds by construction:
points are never negative (a negative number counts as zero), a graded table scores a
grade with the highest number given for it or any better grade, and the score maps to
actions by thresholds, so more points never give a weaker action.

Enforcement is the default. Audit mode, the opt-in for trying a policy on real traffic,
decides exactly as enforce mode does and enforces nothing:
``Decision.enforced`` is ``ALLOW`` and ``Decision.decided`` is what enforce mode would do.

The policy is per action (sign-in, token issuance, refresh, a gateway route) and is
meant to be read from ``bastion.toml`` as a ``device`` table of that action; keys are
the field names of ``Policy``, graded tables are keyed by the lower-case grade names,
count and age tables are lists of ``[at least, points]`` pairs::

    [sign_in.device]                 # the same as sign_in = { device = { ... } }
    mode = "enforce"                 # the default; "audit" decides and enforces nothing
    outage = "step_up"               # allow | limit | step_up | deny
    limit_at = 30
    step_up_at = 60
    deny_at = 100
    attestation = { none = 40, basic = 25, device = 10 }    # strong scores 0
    attestation_age = [[604800, 10], [2592000, 25]]         # never attested: 25 here
    app_recognition = { unknown = 0, unrecognized = 60 }
    licensing = { unknown = 0, unlicensed = 30 }
    app_access_risk = { default = 15, KNOWN_CONTROLLING = 40, UNKNOWN_CONTROLLING = 40 }
    play_protect = { unknown = 0, possible_risk = 10, medium_risk = 30, high_risk = 60 }
    not_dpop_bound = 10
    app_outdated = 30
    app_unreleased = 60            # a version the client never declared as released
    new_device = 20
    counter_anomaly = 100
    impossible_velocity = 60
    failed_sign_ins = [[3, 10], [10, 40]]
    rate_limited = [[1, 10], [5, 30]]
    detectors = { default = 30 }   # points per detector flag, by name

    [token.device]                   # token issuance; keys left out keep their defaults
    [refresh.device]
    [[gateway.routes]]
    device = { mode = "enforce", deny_at = 80 }

This module is a pure core: no I/O, no configuration loading; the caller gathers the
signals (verifiers, stores, detectors) and applies the decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

__all__ = [
    "Action",
    "AttestationLevel",
    "Decision",
    "Mode",
    "PlayProtect",
    "Policy",
    "Signals",
    "assess",
    "no_riskier",
    "policy_problems",
]

Mode = Literal["enforce", "audit"]


class Action(IntEnum):
    """What to do with the request, weakest first (see the module docstring)."""

    ALLOW = 0
    LIMIT = 1
    STEP_UP = 2
    DENY = 3


class AttestationLevel(IntEnum):
    """How much the attestation establishes, weakest first: ``NONE`` (no valid
    attestation), ``BASIC`` (a genuine app, device integrity unproven), ``DEVICE`` (a
    genuine app on a genuine device), ``STRONG`` (hardware-backed, patched device)."""

    NONE = 0
    BASIC = 1
    DEVICE = 2
    STRONG = 3


class PlayProtect(IntEnum):
    """Play Protect's verdict, least risky first. ``UNKNOWN`` covers "no data", "not
    evaluated" and platforms without Play Protect; ``POSSIBLE_RISK`` is Play Protect
    turned off."""

    NO_ISSUES = 0
    UNKNOWN = 1
    POSSIBLE_RISK = 2
    MEDIUM_RISK = 3
    HIGH_RISK = 4


@dataclass(frozen=True)
class Signals:
    """What is known about one request's device and user.

    ``attestation`` and ``attestation_age`` describe the last attestation that verified
    (``NONE`` and ``None`` if there never was one); during an outage the caller passes
    the last known state and sets ``attestation_unavailable``. ``app_recognized`` and
    ``licensed`` are ``None`` when the verdict did not say (or the platform has none).
    ``app_access_risk`` holds the app access risk verdict's flags (for example
    ``KNOWN_CAPTURING``); ``detector_flags`` the names raised by detectors added later.
    """

    attestation: AttestationLevel = AttestationLevel.NONE
    attestation_age: int | None = None
    attestation_unavailable: bool = False
    app_recognized: bool | None = None
    licensed: bool | None = None
    app_access_risk: frozenset[str] = frozenset()
    play_protect: PlayProtect = PlayProtect.UNKNOWN
    dpop_bound: bool = False
    app_outdated: bool = False
    app_unreleased: bool = False
    new_device: bool = False
    counter_anomaly: bool = False
    impossible_velocity: bool = False
    failed_sign_ins: int = 0
    rate_limited: int = 0
    detector_flags: frozenset[str] = frozenset()


# Tri-state verdicts, least risky first: said yes, did not say, said no.
_TRISTATE = {True: 0, None: 1, False: 2}
_UNKNOWN_NO = ("unknown", "unrecognized")
_UNKNOWN_UNLICENSED = ("unknown", "unlicensed")


def _age_rank(age: int | None) -> float:
    return float("inf") if age is None else float(age)


def no_riskier(a: Signals, b: Signals) -> bool:
    """Whether ``a <= b`` in the risk order: each signal of ``b`` is at least as risky
    as the same signal of ``a`` (a weaker or older attestation, a verdict that says no
    where ``a``'s did not say, a superset of flags, more failures, ``True`` for the
    boolean alarms, ``False`` for ``dpop_bound``)."""
    return (
        b.attestation <= a.attestation
        and _age_rank(a.attestation_age) <= _age_rank(b.attestation_age)
        and a.attestation_unavailable <= b.attestation_unavailable
        and _TRISTATE[a.app_recognized] <= _TRISTATE[b.app_recognized]
        and _TRISTATE[a.licensed] <= _TRISTATE[b.licensed]
        and a.app_access_risk <= b.app_access_risk
        and a.play_protect <= b.play_protect
        and b.dpop_bound <= a.dpop_bound
        and a.app_outdated <= b.app_outdated
        and a.app_unreleased <= b.app_unreleased
        and a.new_device <= b.new_device
        and a.counter_anomaly <= b.counter_anomaly
        and a.impossible_velocity <= b.impossible_velocity
        and a.failed_sign_ins <= b.failed_sign_ins
        and a.rate_limited <= b.rate_limited
        and a.detector_flags <= b.detector_flags
    )


def _default_attestation() -> dict[str, int]:
    return {"none": 40, "basic": 25, "device": 10}


def _default_play_protect() -> dict[str, int]:
    return {"unknown": 0, "possible_risk": 10, "medium_risk": 30, "high_risk": 60}


@dataclass(frozen=True)
class Policy:
    """How signals score and which action a score reaches, for one action (sign-in,
    token issuance, refresh, a gateway route). The field names are the TOML keys drawn
    in the module docstring; see there for the meaning of each table."""

    # Enforce unless audit mode is asked for: audit mode weakens the protection (it only
    # reports), so it is the opt-in, for trying a policy on real traffic first.
    mode: Mode = "enforce"
    outage: Action = Action.STEP_UP
    limit_at: int = 30
    step_up_at: int = 60
    deny_at: int = 100
    attestation: Mapping[str, int] = field(default_factory=_default_attestation)
    attestation_age: tuple[tuple[int, int], ...] = ((7 * 86400, 10), (30 * 86400, 25))
    app_recognition: Mapping[str, int] = field(default_factory=lambda: {"unrecognized": 60})
    licensing: Mapping[str, int] = field(default_factory=lambda: {"unlicensed": 30})
    app_access_risk: Mapping[str, int] = field(default_factory=lambda: {"default": 15})
    play_protect: Mapping[str, int] = field(default_factory=_default_play_protect)
    not_dpop_bound: int = 10
    app_outdated: int = 30
    # A version never released is a repackaged or tampered build: step-up by default.
    app_unreleased: int = 60
    new_device: int = 20
    counter_anomaly: int = 100
    impossible_velocity: int = 60
    failed_sign_ins: tuple[tuple[int, int], ...] = ((3, 10), (10, 40))
    rate_limited: tuple[tuple[int, int], ...] = ((1, 10), (5, 30))
    detectors: Mapping[str, int] = field(default_factory=lambda: {"default": 30})


@dataclass(frozen=True)
class Decision:
    """The decided action, the one to enforce (``ALLOW`` in audit mode), the signals
    that raised the risk and the score they reached."""

    decided: Action
    enforced: Action
    reasons: tuple[str, ...]
    score: int
    mode: Mode


def _points(value: int) -> int:
    return max(0, value)


def _graded(table: Mapping[str, int], grades: tuple[str, ...], grade: int) -> int:
    """Points for ``grade`` (0 = no risk, ``grades[i]`` names grade ``i + 1``): the
    highest number given for it or any less risky grade."""
    return max((_points(table.get(name, 0)) for name in grades[:grade]), default=0)


def _stepped(table: tuple[tuple[int, int], ...], amount: float) -> int:
    """Points for a count or an age: the highest of the pairs whose bound it reaches."""
    return max((_points(points) for at, points in table if amount >= at), default=0)


def _flags(table: Mapping[str, int], flags: frozenset[str]) -> dict[str, int]:
    default = table.get("default", 0)
    return {flag: _points(table.get(flag, default)) for flag in sorted(flags)}


_LEVELS = ("device", "basic", "none")  # from the least risky grade below strong
_PLAY_PROTECT = ("unknown", "possible_risk", "medium_risk", "high_risk")
_FLAT = (
    "not_dpop_bound",
    "app_outdated",
    "app_unreleased",
    "new_device",
    "counter_anomaly",
    "impossible_velocity",
)


def _scores(signals: Signals, policy: Policy) -> list[tuple[str, int]]:
    s, p = signals, policy
    access = _flags(p.app_access_risk, s.app_access_risk)
    scored = [
        ("attestation", _graded(p.attestation, _LEVELS, AttestationLevel.STRONG - s.attestation)),
        ("attestation_age", _stepped(p.attestation_age, _age_rank(s.attestation_age))),
        ("app_recognition", _graded(p.app_recognition, _UNKNOWN_NO, _TRISTATE[s.app_recognized])),
        ("licensing", _graded(p.licensing, _UNKNOWN_UNLICENSED, _TRISTATE[s.licensed])),
        ("app_access_risk", max(access.values(), default=0)),
        ("play_protect", _graded(p.play_protect, _PLAY_PROTECT, s.play_protect)),
        ("not_dpop_bound", 0 if s.dpop_bound else _points(p.not_dpop_bound)),
        ("app_outdated", _points(p.app_outdated) if s.app_outdated else 0),
        ("app_unreleased", _points(p.app_unreleased) if s.app_unreleased else 0),
        ("new_device", _points(p.new_device) if s.new_device else 0),
        ("counter_anomaly", _points(p.counter_anomaly) if s.counter_anomaly else 0),
        ("impossible_velocity", _points(p.impossible_velocity) if s.impossible_velocity else 0),
        ("failed_sign_ins", _stepped(p.failed_sign_ins, s.failed_sign_ins)),
        ("rate_limited", _stepped(p.rate_limited, s.rate_limited)),
    ]
    detected = _flags(p.detectors, s.detector_flags)
    scored.extend((f"detector:{flag}", points) for flag, points in detected.items())
    return scored


def _outage(value: object) -> Action:
    """The fallback action; one that is not an action (a configuration the loader did
    not check) falls back to ``STEP_UP`` rather than failing the request."""
    if isinstance(value, Action):
        return value
    return Action.__members__.get(str(value).upper(), Action.STEP_UP)


def assess(signals: Signals, policy: Policy) -> Decision:
    """Decide what to do with a request from its signals, under ``policy``."""
    scored = [(reason, points) for reason, points in _scores(signals, policy) if points > 0]
    score = sum(points for _, points in scored)
    decided = Action.ALLOW
    for action, threshold in (
        (Action.LIMIT, policy.limit_at),
        (Action.STEP_UP, policy.step_up_at),
        (Action.DENY, policy.deny_at),
    ):
        if score >= threshold:
            decided = max(decided, action)
    reasons = [reason for reason, _ in scored]
    if signals.attestation_unavailable:
        decided = max(decided, _outage(policy.outage))
        reasons.append("attestation_unavailable")
    # Only the exact word "audit" turns enforcement off: a mistyped mode enforces.
    enforced = Action.ALLOW if policy.mode == "audit" else decided
    return Decision(decided, enforced, tuple(reasons), score, policy.mode)


def policy_problems(policy: Policy) -> tuple[str, ...]:
    """What is wrong with a policy, for the configuration layer to report; empty when
    nothing is. ``assess`` never fails on these (see the module docstring)."""
    problems: list[str] = []
    if policy.mode not in ("enforce", "audit"):
        problems.append(f"mode: {policy.mode!r} is neither 'enforce' nor 'audit'")
    if not isinstance(policy.outage, Action):
        problems.append(f"outage: {policy.outage!r} is not an action")
    if not policy.limit_at <= policy.step_up_at <= policy.deny_at:
        problems.append("thresholds: limit_at <= step_up_at <= deny_at does not hold")
    grades = {
        "attestation": _LEVELS,
        "app_recognition": _UNKNOWN_NO,
        "licensing": _UNKNOWN_UNLICENSED,
        "play_protect": _PLAY_PROTECT,
    }
    for name, known in grades.items():
        table: Mapping[str, int] = getattr(policy, name)
        problems.extend(f"{name}: no grade {key!r}" for key in table if key not in known)
    for name in (*grades, "app_access_risk", "detectors"):
        table = getattr(policy, name)
        problems.extend(f"{name}.{key}: negative points" for key, v in table.items() if v < 0)
    for name in ("attestation_age", "failed_sign_ins", "rate_limited"):
        pairs: tuple[tuple[int, int], ...] = getattr(policy, name)
        problems.extend(f"{name}: negative points at {at}" for at, v in pairs if v < 0)
    for name in _FLAT:
        if getattr(policy, name) < 0:
            problems.append(f"{name}: negative points")
    return tuple(problems)
