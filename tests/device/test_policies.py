"""Applying per-action risk policies: cohorts, the attestation requirement, audit mode,
outages, and the ``device.risk`` audit event, on the real device store (SQLite and
PostgreSQL) and hot state (memory and Redis)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from bastion.accounts.throttle import LoginThrottle, ThrottleLimits
from bastion.audit import AuditPipeline
from bastion.audit.sinks import MemorySink
from bastion.clock import FixedClock
from bastion.device import anomalies, cohorts
from bastion.device.policies import RiskPolicies, admitted, settle
from bastion.device.records import Device
from bastion.device.risk import Action, Decision, Signals
from bastion.device.settings import (
    ClientDeviceSettings,
    CohortSettings,
    DeviceSettings,
    PolicySettings,
)
from bastion.device.signals import FRESH_FOR, Found, RiskRequest, SignalSources
from bastion.errors import StoreUnavailable
from bastion.guards import hits
from bastion.store.protocols import HotStore
from bastion.store.sql.database import Database
from bastion.store.sql.devices import SqlDeviceStore

NOW = 1_700_000_000.0
STRONG = Device(
    device_id="dev-s",
    platform="android",
    client_id="app",
    level="strong",
    first_seen=NOW,
    last_seen=NOW,
    attested_at=NOW,
    verdict={
        "app_recognition": "PLAY_RECOGNIZED",
        "licensing": "LICENSED",
        "play_protect": "NO_ISSUES",
    },
    app_version="4.2.0",
    dpop_jkt="s" * 43,
    user_ids=("alice",),
)
USERS = [f"user-{n}" for n in range(1000)]
TEN = CohortSettings(percent=10, salt="device-risk-rollout")


def request(
    user: str = "alice", jkt: str | None = STRONG.dpop_jkt, **changes: object
) -> RiskRequest:
    base = RiskRequest(
        user_id=user, client_id="app", jkt=jkt, bound=jkt is not None, ip="192.0.2.1"
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_ten_percent_cohort_admits_about_a_tenth_of_users_and_keeps_them() -> None:
    # Sticky: bucket(id, salt) decides, so a second run admits the very same users, and
    # widening to 20 % keeps the first 10 % in.
    def admitted_users(cohort: CohortSettings) -> set[str]:
        return {
            u
            for u in USERS
            if admitted(cohort, user_id=u, device_id=None, client_id="app", app_version=None)
        }

    first = admitted_users(TEN)
    assert 70 <= len(first) <= 130
    assert admitted_users(TEN) == first
    assert first == {u for u in USERS if cohorts.bucket(u, TEN.salt) < 1000}
    wider = admitted_users(CohortSettings(percent=20, salt=TEN.salt))
    assert first < wider
    assert 160 <= len(wider) <= 240


def test_a_cohort_admits_listed_clients_versions_and_devices_before_sign_in() -> None:
    listed = CohortSettings(clients=("beta-app",), versions=("4.3.0",))
    assert admitted(listed, user_id="u", device_id=None, client_id="beta-app", app_version=None)
    assert admitted(listed, user_id="u", device_id=None, client_id="app", app_version="4.3.0")
    assert not admitted(listed, user_id="u", device_id=None, client_id="app", app_version="4.2.0")
    everyone = CohortSettings(percent=100, salt="s")
    assert admitted(everyone, user_id=None, device_id="dev-1", client_id=None, app_version=None)
    assert not admitted(everyone, user_id=None, device_id=None, client_id=None, app_version=None)
    assert admitted(None, user_id=None, device_id=None, client_id=None, app_version=None)


def test_require_attestation_denies_without_an_attested_device_even_under_a_low_score() -> None:
    policy = PolicySettings(require_attestation=True, limit_at=1000, step_up_at=1000, deny_at=1000)
    allow = Decision(Action.ALLOW, Action.ALLOW, (), 0, "enforce")
    missing = settle(allow, Signals(), Found(None), policy)
    assert (missing.decided, missing.enforced) == (Action.DENY, Action.DENY)
    assert missing.reasons == ("attestation_missing",)
    unattested = settle(allow, Signals(), Found(replace(STRONG, level="none")), policy)
    assert unattested.reasons == ("attestation_missing",)
    assert settle(allow, Signals(), Found(STRONG), policy) == allow
    # Audit mode: decided, recorded, not enforced.
    audited = settle(replace(allow, mode="audit"), Signals(), Found(None), policy)
    assert (audited.decided, audited.enforced) == (Action.DENY, Action.ALLOW)
    # An outage is not a missing attestation: the fallback applies instead.
    outage = settle(allow, Signals(attestation_unavailable=True), Found(None), policy)
    assert outage == allow
    revoked = settle(allow, Signals(), Found(None, revoked=STRONG), policy)
    assert revoked.reasons == ("device_revoked", "attestation_missing")


class Down:
    """A device store that cannot be reached."""

    async def by_jkt(self, jkt: str) -> Device | None:
        raise StoreUnavailable("database", "connection refused")


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


def judge_with(
    devices: object, hot: HotStore, clock: FixedClock, sink: MemorySink, **options: object
) -> RiskPolicies:
    throttle = LoginThrottle(hot, clock, ThrottleLimits(), AuditPipeline([]))

    async def username(user_id: str) -> str | None:
        return user_id

    sources = SignalSources(
        devices=devices,  # type: ignore[arg-type]
        hot=hot,
        clock=clock,
        clients={},
        throttle=throttle,
        usernames=username,
        **options,  # type: ignore[arg-type]
    )
    return RiskPolicies(sources, {"ten": TEN}, AuditPipeline([sink]))


async def test_a_strong_device_is_allowed_and_the_decision_audited(
    migrated: Database, hot_store: HotStore, sink: MemorySink
) -> None:
    store = SqlDeviceStore(migrated)
    await store.add(STRONG)
    clock = FixedClock(NOW + 60)
    risk = judge_with(store, hot_store, clock, sink)
    judgement = await risk.judge("token", PolicySettings(), request(), correlation_id="c1")
    assert judgement is not None
    assert judgement.enforced is Action.ALLOW
    assert judgement.device == STRONG
    (event,) = sink.records
    assert (event["action"], event["outcome"], event["policy"]) == (
        "device.risk",
        "success",
        "token",
    )
    assert (event["actor"], event["target"], event["correlation_id"]) == (
        "user:alice",
        "device:dev-s",
        "c1",
    )
    details = event["details"]
    assert details["decided"] == details["enforced"] == "allow"
    assert details["mode"] == "enforce"
    assert details["score"] == 0
    assert details["reasons"] == []
    assert details["signals"]["attestation"] == "strong"
    assert details["signals"]["attestation_age"] == 60
    # Signals used, never a key, token, address or receipt.
    text = str(event)
    assert "s" * 43 not in text
    assert "192.0.2.1" not in text


async def test_a_counter_anomaly_denies_and_audit_mode_only_records_it(
    migrated: Database, hot_store: HotStore, sink: MemorySink
) -> None:
    store = SqlDeviceStore(migrated)
    await store.add(STRONG)
    await anomalies.mark(hot_store, STRONG.device_id, "counter_regression")
    risk = judge_with(store, hot_store, FixedClock(NOW), sink)
    enforced = await risk.judge("refresh", PolicySettings(), request())
    audited = await risk.judge("refresh", PolicySettings(mode="audit"), request())
    assert enforced is not None
    assert audited is not None
    assert (enforced.decision.decided, enforced.enforced) == (Action.DENY, Action.DENY)
    assert (audited.decision.decided, audited.enforced) == (Action.DENY, Action.ALLOW)
    assert enforced.decision.reasons == ("counter_anomaly",)
    assert [r["outcome"] for r in sink.records] == ["denied", "success"]
    assert sink.records[1]["details"]["decided"] == "deny"


async def test_failed_sign_ins_and_rate_limit_refusals_raise_the_score(
    migrated: Database, hot_store: HotStore, sink: MemorySink
) -> None:
    store = SqlDeviceStore(migrated)
    await store.add(STRONG)
    clock = FixedClock(NOW)
    risk = judge_with(store, hot_store, clock, sink)
    throttle = LoginThrottle(hot_store, clock, ThrottleLimits(), AuditPipeline([]))
    for _ in range(10):
        await throttle.failure("alice", "198.51.100.1")
    for _ in range(5):
        await hits.record(hot_store, "alice")
    judgement = await risk.judge("token", PolicySettings(), request())
    assert judgement is not None
    assert (judgement.signals.failed_sign_ins, judgement.signals.rate_limited) == (10, 5)
    assert judgement.decision.reasons == ("failed_sign_ins", "rate_limited")
    assert judgement.enforced is Action.STEP_UP  # 40 + 30


async def test_a_network_change_within_the_window_is_impossible_velocity(
    migrated: Database, hot_store: HotStore, sink: MemorySink
) -> None:
    store = SqlDeviceStore(migrated)
    await store.add(STRONG)
    clock = FixedClock(NOW)
    risk = judge_with(store, hot_store, clock, sink, velocity_window=600.0)
    policy = PolicySettings()
    first = await risk.judge("token", policy, request(ip="192.0.2.1"))
    clock.advance(60)
    same = await risk.judge("token", policy, request(ip="192.0.2.200"))
    clock.advance(60)
    elsewhere = await risk.judge("token", policy, request(ip="203.0.113.9"))
    assert first is not None
    assert same is not None
    assert elsewhere is not None
    assert not first.signals.impossible_velocity
    assert not same.signals.impossible_velocity
    assert elsewhere.signals.impossible_velocity
    assert elsewhere.enforced is Action.STEP_UP


async def test_outside_the_cohort_nothing_is_judged_nor_audited(
    migrated: Database, hot_store: HotStore, sink: MemorySink
) -> None:
    store = SqlDeviceStore(migrated)
    risk = judge_with(store, hot_store, FixedClock(NOW), sink)
    policy = PolicySettings(cohort="ten", require_attestation=True)
    answers = {
        u: await risk.judge("route:orders", policy, request(u, jkt=None)) for u in USERS[:200]
    }
    inside = {u for u, j in answers.items() if j is not None}
    assert inside == {u for u in USERS[:200] if cohorts.bucket(u, TEN.salt) < 1000}
    assert all(j.enforced is Action.DENY for j in answers.values() if j is not None)
    assert len(sink.records) == len(inside)


async def test_a_device_store_outage_falls_back_to_step_up(
    hot_store: HotStore, sink: MemorySink
) -> None:
    risk = judge_with(Down(), hot_store, FixedClock(NOW), sink)
    judgement = await risk.judge("token", PolicySettings(require_attestation=True), request())
    assert judgement is not None
    assert judgement.signals.attestation_unavailable
    assert judgement.enforced is Action.STEP_UP
    assert judgement.decision.reasons[-1] == "attestation_unavailable"
    deny = await risk.judge("token", PolicySettings(outage="deny"), request())
    assert deny is not None
    assert deny.enforced is Action.DENY


async def test_during_an_outage_the_last_known_record_stands_in(
    migrated: Database, hot_store: HotStore, sink: MemorySink
) -> None:
    store = SqlDeviceStore(migrated)
    await store.add(STRONG)
    clock = FixedClock(NOW)
    sources = judge_with(store, hot_store, clock, sink).sources
    assert (await sources.device(STRONG.dpop_jkt)).device == STRONG
    sources._devices = Down()  # type: ignore[assignment]  # the database goes away
    clock.advance(FRESH_FOR + 1)  # past the few seconds a record is used unread
    found = await sources.device(STRONG.dpop_jkt)
    assert found.unavailable
    assert found.device == STRONG
    signals = await sources.gather(request(), found)
    assert signals.attestation_unavailable
    assert signals.attestation.name == "STRONG"


async def test_a_revoked_device_counts_as_none(
    migrated: Database, hot_store: HotStore, sink: MemorySink
) -> None:
    store = SqlDeviceStore(migrated)
    await store.add(STRONG)
    await store.revoke(STRONG.device_id, NOW, "lost")
    risk = judge_with(store, hot_store, FixedClock(NOW), sink)
    judgement = await risk.judge("token", PolicySettings(), request())
    assert judgement is not None
    assert judgement.device is None
    assert judgement.signals.attestation.name == "NONE"
    assert "device_revoked" in judgement.decision.reasons
    assert sink.records[0]["target"] == "device:dev-s"


async def test_a_claimed_device_never_meets_require_attestation(
    migrated: Database, hot_store: HotStore, sink: MemorySink
) -> None:
    """An authorization request's ``dpop_jkt`` (RFC 9449 §10) names a key the browser
    cannot prove, and thumbprints are not secret: naming an attested device's key is a
    claim, which may add risk but never vouches for the request."""
    store = SqlDeviceStore(migrated)
    await store.add(STRONG)
    risk = judge_with(store, hot_store, FixedClock(NOW), sink)
    policy = PolicySettings(require_attestation=True)
    proved = await risk.judge("token", policy, request())
    assert proved is not None
    assert proved.enforced is Action.ALLOW
    claimed = await risk.judge("sign_in", policy, request(bound=False, claimed=True))
    assert claimed is not None
    assert claimed.enforced is Action.DENY
    assert "attestation_missing" in claimed.decision.reasons
    # Never lower than naming no device at all.
    nothing = await risk.judge("sign_in", PolicySettings(), request(jkt=None))
    named = await risk.judge("sign_in", PolicySettings(), request(bound=False, claimed=True))
    assert nothing is not None
    assert named is not None
    assert named.decision.score >= nothing.decision.score


INSTALLATION = replace(
    STRONG,
    device_id="dev-inst",
    registered_client_id="inst-1",
    app_version="0.0.1",
    dpop_jkt="i" * 43,
)


async def test_an_installation_client_is_judged_as_its_app(
    migrated: Database, hot_store: HotStore, sink: MemorySink
) -> None:
    """A per-installation client made by attested registration (RFC 7591) is an
    installation of its declared app: the app's versions and cohorts apply to it."""
    store = SqlDeviceStore(migrated)
    await store.add(INSTALLATION)
    throttle = LoginThrottle(hot_store, FixedClock(NOW), ThrottleLimits(), AuditPipeline([]))
    sources = SignalSources(
        devices=store,
        hot=hot_store,
        clock=FixedClock(NOW),
        clients={
            "app": ClientDeviceSettings(min_app_version="1.0", released_versions=("1.0", "1.1"))
        },
        throttle=throttle,
    )
    beta = CohortSettings(clients=("app",))
    risk = RiskPolicies(sources, {"beta": beta}, AuditPipeline([sink]))
    asked = request(client_id="inst-1", jkt=INSTALLATION.dpop_jkt)
    judgement = await risk.judge("route:pay", PolicySettings(cohort="beta"), asked)
    assert judgement is not None, "a cohort listing the app covers its installations"
    assert judgement.signals.app_outdated
    assert judgement.signals.app_unreleased
    assert judgement.enforced is Action.STEP_UP  # 30 + 60 points
    # Another client using that device's key is judged as itself.
    assert (
        await risk.judge(
            "route:pay",
            PolicySettings(cohort="beta"),
            request(client_id="web", jkt=INSTALLATION.dpop_jkt),
        )
        is None
    )


def test_the_sign_in_policy_cannot_demand_what_a_browser_cannot_prove() -> None:
    """The sign-in page runs in the system browser (RFC 8252 §8.12), which holds no
    device key: ``require_attestation`` there is refused when the configuration is read,
    and the message points to ``[device.token]``, where the code exchange's DPoP proof
    (RFC 9449 §10) proves the key."""
    for demand in ("require_attestation", "require_assertion"):
        with pytest.raises(ValidationError) as caught:
            DeviceSettings.model_validate({"sign_in": {demand: True}})
        assert f"[device.token].{demand}" in str(caught.value)
    DeviceSettings.model_validate({"token": {"require_attestation": True}})


async def test_an_app_attest_assertion_on_the_request_restarts_the_attestation_age(
    hot_store: HotStore, sink: MemorySink
) -> None:
    """The gateway's assertion step verified an assertion signed by the attested key
    (Apple, "Validating apps that connect to your server"): fresh evidence, so a device
    attested a month ago and asserting now is not judged as a month old. During an
    outage its last known record is not evidence of anything new."""
    month_old = replace(
        STRONG, platform="ios", level="device", verdict=None, attested_at=NOW - 30 * 86400
    )
    risk = judge_with(Down(), hot_store, FixedClock(NOW), sink)
    verified = await risk.judge("route:pay", PolicySettings(), request(known=month_old))
    assert verified is not None
    assert verified.signals.attestation_age == 0
    assert "attestation_age" not in verified.decision.reasons
    down = await risk.judge("route:pay", PolicySettings(), request(known=month_old, outage=True))
    assert down is not None
    assert down.signals.attestation_age == 30 * 86400
