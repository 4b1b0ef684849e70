"""Applying a risk policy to one action: cohort, signals, decision, audit event.

``RiskPolicies.judge`` is what every enforcement point calls (sign-in, token issuance,
refresh, a gateway route with a ``device`` table):

1. the device the request's DPoP key is bound to is looked up;
2. the policy's cohort (``[device.cohorts.NAME]``) is checked: a request outside it is
   not judged at all (``None``), exactly as if no policy were set. A request is in the
   cohort when any criterion holds: its user's bucket (``cohorts.in_cohort`` of the
   user id, or of the device id before anyone signed in) is under ``percent``, its
   client is listed (a per-installation client also when its app client is), or its
   app version (from the device record) is listed;
3. the other signals are gathered and ``risk.assess`` decides;
4. ``require_attestation`` then refuses a request without an attested device (revoked
   or ``level = "none"`` counting as none, and so does a device only named, never
   proved: ``RiskRequest.claimed``) with the reason ``attestation_missing`` at the
   ``DENY`` level, unless attestation could not be checked at all (an outage: the
   fallback applies instead). Audit mode still enforces nothing;
5. one ``device.risk`` audit event records the decision (``audit_details``).

What each action means at each enforcement point is the caller's business; the module
``bastion.gateway.steps.device`` and the sign-in and grant code say it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from bastion.audit import AuditEvent, AuditPipeline, Outcome
from bastion.device import cohorts
from bastion.device.records import Device
from bastion.device.risk import Action, Decision, Signals, assess
from bastion.device.settings import CohortSettings, PolicySettings
from bastion.device.signals import Found, RiskRequest, SignalSources, app_client_id, attested

EVENT = "device.risk"
ATTESTATION_MISSING = "attestation_missing"
DEVICE_REVOKED = "device_revoked"


@dataclass(frozen=True)
class Judgement:
    """A decision about one request under one action's policy."""

    action: str
    decision: Decision
    signals: Signals
    device: Device | None
    policy: PolicySettings

    @property
    def enforced(self) -> Action:
        return self.decision.enforced


def admitted(
    cohort: CohortSettings | None,
    *,
    user_id: str | None,
    device_id: str | None,
    client_id: str | None,
    app_version: str | None,
    app_client_id: str | None = None,
) -> bool:
    """Whether a request is in ``cohort`` (None: everyone is). ``app_client_id`` is the
    declared app client a per-installation client belongs to: a cohort listing the app
    covers its installations."""
    if cohort is None:
        return True
    identifier = user_id or device_id
    if (
        cohort.percent is not None
        and identifier is not None
        and cohorts.in_cohort(identifier, cohort.salt, cohort.percent)
    ):
        return True
    for listed in (client_id, app_client_id):
        if listed is not None and cohorts.listed_client(listed, cohort.clients):
            return True
    return cohorts.listed_version(app_version, cohort.versions)


def settle(
    decision: Decision,
    signals: Signals,
    found: Found,
    policy: PolicySettings,
    *,
    claimed: bool = False,
) -> Decision:
    """The decision once the policy's demands on the device are applied (pure). A
    ``claimed`` device (named, not proved: an authorization request's ``dpop_jkt``)
    never meets ``require_attestation``: thumbprints are public, anyone can name one."""
    reasons = list(decision.reasons)
    decided = decision.decided
    if found.revoked is not None:
        reasons.append(DEVICE_REVOKED)
    if (
        policy.require_attestation
        and not signals.attestation_unavailable
        and (claimed or not attested(found.device))
    ):
        decided = Action.DENY
        reasons.append(ATTESTATION_MISSING)
    if decided == decision.decided and len(reasons) == len(decision.reasons):
        return decision
    enforced = Action.ALLOW if decision.mode == "audit" else decided
    return replace(decision, decided=decided, enforced=enforced, reasons=tuple(reasons))


def audit_details(judgement: Judgement, request: RiskRequest) -> dict[str, Any]:
    """What the audit event says: the decision and every signal used, never a key,
    token, address or receipt."""
    decision, s = judgement.decision, judgement.signals
    return {
        "action": judgement.action,
        "decided": decision.decided.name.lower(),
        "enforced": decision.enforced.name.lower(),
        "mode": decision.mode,
        "score": decision.score,
        "reasons": list(decision.reasons),
        "client": request.client_id,
        "signals": {
            "attestation": s.attestation.name.lower(),
            "attestation_age": s.attestation_age,
            "attestation_unavailable": s.attestation_unavailable,
            "app_recognized": s.app_recognized,
            "licensed": s.licensed,
            "app_access_risk": sorted(s.app_access_risk),
            "play_protect": s.play_protect.name.lower(),
            "dpop_bound": s.dpop_bound,
            "app_outdated": s.app_outdated,
            "app_unreleased": s.app_unreleased,
            "new_device": s.new_device,
            "counter_anomaly": s.counter_anomaly,
            "impossible_velocity": s.impossible_velocity,
            "failed_sign_ins": s.failed_sign_ins,
            "rate_limited": s.rate_limited,
            "detector_flags": sorted(s.detector_flags),
        },
    }


class RiskPolicies:
    """Judges requests under per-action policies (module docstring)."""

    def __init__(
        self,
        sources: SignalSources,
        cohort_settings: Mapping[str, CohortSettings],
        audit: AuditPipeline,
    ) -> None:
        self.sources = sources
        self._cohorts = cohort_settings
        self._audit = audit

    async def judge(
        self,
        action: str,
        policy: PolicySettings | None,
        request: RiskRequest,
        *,
        correlation_id: str | None = None,
    ) -> Judgement | None:
        """The judgement of ``request`` under ``policy``; None when there is no policy
        or the request is outside its cohort (then nothing is enforced nor audited)."""
        if policy is None:
            return None
        found = await self.sources.device(request.jkt, request)
        device = found.device or found.revoked
        # An unknown cohort is refused by the configuration checks; should one slip
        # through, everyone is judged rather than no one.
        cohort = None if policy.cohort is None else self._cohorts.get(policy.cohort)
        if not admitted(
            cohort,
            user_id=request.user_id,
            device_id=None if device is None else device.device_id,
            client_id=request.client_id,
            app_version=None if device is None else device.app_version,
            app_client_id=app_client_id(request.client_id, device),
        ):
            return None
        signals = await self.sources.gather(request, found)
        decision = settle(
            assess(signals, policy.policy()), signals, found, policy, claimed=request.claimed
        )
        judgement = Judgement(action, decision, signals, found.device, policy)
        self._audit.emit(
            AuditEvent(
                EVENT,
                Outcome.SUCCESS if decision.enforced is Action.ALLOW else Outcome.DENIED,
                actor=f"user:{request.user_id}" if request.user_id else "anonymous",
                target=None if device is None else f"device:{device.device_id}",
                policy=action,
                correlation_id=correlation_id,
                details=audit_details(judgement, request),
            )
        )
        return judgement
