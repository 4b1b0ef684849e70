"""Gathering the risk signals of one request: the I/O shell around ``bastion.device.risk``.

An enforcement point (sign-in, the token endpoint, a gateway route) says what it knows
in a ``RiskRequest``: the user, the client, the DPoP key thumbprint the request proved
(a token's ``cnf.jkt``, a token request's proof, an authorization request's
``dpop_jkt``), whether the credential is bound to that key, and the source address.
``SignalSources`` then reads, in two steps so that a request outside a policy's cohort
costs one lookup only:

1. ``device``: the device record the key is bound to (``DeviceStore.by_jkt``). A revoked
   record counts as no device (and is reported, for the reason ``device_revoked``).
   When the store cannot be reached the last record this process read for the key, if
   any, stands in and the request is marked ``unavailable``. A device the enforcement
   point already has (``RiskRequest.known``: the gateway's assertion step verified it,
   or reported an outage with its last known record) is used as it is.
2. ``gather``: the rest, into ``risk.Signals``: attestation level and age from the
   record (for App Attest, from its latest verified assertion too: ``asserted``), the
   Play Integrity verdict summary (``bastion.device.verdicts``), the app version against
   the client's ``min_app_version`` and ``released_versions``
   (``bastion.device.versions``; a per-installation client is judged as its app:
   ``app_client_id``), whether the user is new on this device, a counter
   anomaly (``bastion.device.anomalies``), a network change too soon
   (``bastion.device.velocity``), the account's failed sign-ins (the login throttle),
   recent rate-limit refusals (``bastion.guards.hits``) and detector flags.

An outage never fails the request: hot state or the device store being down, or the
attestation verifier reporting an outage, sets ``attestation_unavailable`` with whatever
was known, and the policy's ``outage`` fallback applies.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from bastion.caches import TTLCache
from bastion.clock import Clock
from bastion.device import anomalies, velocity, versions
from bastion.device.records import Device, DeviceStore
from bastion.device.risk import AttestationLevel, PlayProtect, Signals
from bastion.device.settings import ClientDeviceSettings
from bastion.device.verdicts import verdict_signals
from bastion.errors import DeviceUnverifiable, StoreUnavailable
from bastion.guards import hits
from bastion.store.protocols import HotStore

log = logging.getLogger("bastion.device")

# Failures that mean "cannot tell", never "refuse": the outage fallback applies.
OUTAGES: tuple[type[Exception], ...] = (StoreUnavailable, DeviceUnverifiable)
# The last record read per key, for an outage; a few minutes old at most.
LAST_KNOWN_FOR = 300.0
# A record this recent is used without reading it again: a gateway route with a device
# table would otherwise read the database on every request. A revocation still ends
# the device's tokens at once (they are denylisted); only its standing lags this long.
FRESH_FOR = 5.0
LAST_KNOWN_ENTRIES = 10_000
USERNAMES_FOR = 300.0


@dataclass(frozen=True)
class RiskRequest:
    """What an enforcement point knows about the request being judged."""

    user_id: str | None
    client_id: str | None
    # The RFC 7638 thumbprint of the DPoP key the request proved, if any.
    jkt: str | None = None
    # The credential (access token, grant) is bound to that key (``cnf.jkt``).
    bound: bool = False
    ip: str | None = None
    # Known at sign-in before the throttle forgets them; read from the throttle if None.
    failed_sign_ins: int | None = None
    # The key is named, not proved (an authorization request's ``dpop_jkt``): the
    # device's good standing cannot lower the risk, only its bad signs can raise it.
    claimed: bool = False
    # The device an assertion on this request proved (the gateway's assertion step), or
    # during an outage its last known record: used instead of a lookup by ``jkt``.
    known: Device | None = None
    # Attestation could not be verified for this request (the trust data is unavailable).
    outage: bool = False


class Detectors(Protocol):
    """Names of suspicious patterns a detector sees in a request (credential stuffing,
    token replay, ...); each scores ``detectors.<name>`` points. Detectors arrive with
    the monitoring work; until then ``NoDetectors`` answers for them."""

    async def flags(self, request: RiskRequest) -> frozenset[str]: ...


class NoDetectors:
    async def flags(self, request: RiskRequest) -> frozenset[str]:
        return frozenset()


class FailedSignIns(Protocol):
    """The login throttle's count of an account's recent failures."""

    async def failures(self, username: str) -> int: ...


@dataclass(frozen=True)
class Found:
    """The device a request's key is bound to. ``device`` is None when there is none or
    it is revoked (then ``revoked`` holds it); ``unavailable`` when the store was down."""

    device: Device | None
    revoked: Device | None = None
    unavailable: bool = False


def attested(device: Device | None) -> bool:
    return device is not None and not device.revoked and device.level != "none"


def app_client_id(client_id: str | None, device: Device | None) -> str | None:
    """The client a request is judged as: a per-installation client made by attested
    registration (RFC 7591; ``Device.registered_client_id``) is judged as the declared
    app client its device attested for, whose ``[oauth.clients.device]`` declares the
    app's versions; any other client as itself."""
    if device is not None and client_id is not None and device.registered_client_id == client_id:
        return device.client_id
    return client_id


def asserted(device: Device, now: float) -> Device:
    """``device`` as of an App Attest assertion it made on this request: the assertion
    is signed by the attested key (Apple, "Validating apps that connect to your server":
    assertion), fresh evidence that the key still lives on this installation, so the
    attestation's age starts again. A Play Integrity assertion is a new verdict, which
    the service records as a new attestation already."""
    if device.platform != "ios" or device.level == "none" or device.attested_at >= now:
        return device
    return replace(device, attested_at=now)


def compose(
    request: RiskRequest,
    found: Found,
    client: ClientDeviceSettings | None,
    now: float,
    *,
    anomaly: bool = False,
    moved: bool = False,
    failed_sign_ins: int = 0,
    rate_limited: int = 0,
    detector_flags: frozenset[str] = frozenset(),
    unavailable: bool = False,
) -> Signals:
    """The signals of a request from what was read (pure)."""
    device = found.device
    level = AttestationLevel.NONE if device is None else AttestationLevel[device.level.upper()]
    age = None
    if device is not None and level is not AttestationLevel.NONE:
        age = max(0, int(now - device.attested_at))
    verdict = verdict_signals(None if device is None else device.verdict)
    app_recognized = verdict.app_recognized
    if device is not None and device.platform == "ios" and level is not AttestationLevel.NONE:
        # App Attest verified the key was made for this team and bundle (rpIdHash): the
        # app is recognised; Apple has no licence or Play Protect verdict.
        app_recognized = True
    version = None if device is None else device.app_version
    minimum = None if client is None else client.min_app_version
    released = () if client is None else client.released_versions
    if request.claimed:
        # Anyone can name a thumbprint: what would vouch for the device is left at its
        # riskiest, what speaks against it (anomaly, version, new user) is kept.
        level, age = AttestationLevel.NONE, None
        app_recognized = None if app_recognized else app_recognized
        verdict = replace(
            verdict,
            licensed=None if verdict.licensed else verdict.licensed,
            play_protect=max(verdict.play_protect, PlayProtect.UNKNOWN),
        )
    return Signals(
        attestation=level,
        attestation_age=age,
        attestation_unavailable=unavailable or found.unavailable,
        app_recognized=app_recognized,
        licensed=verdict.licensed,
        app_access_risk=verdict.app_access_risk,
        play_protect=verdict.play_protect,
        dpop_bound=request.bound and device is not None,
        app_outdated=versions.outdated(version, minimum),
        app_unreleased=versions.unreleased(version, released),
        new_device=(
            device is not None
            and request.user_id is not None
            and request.user_id not in device.user_ids
        ),
        counter_anomaly=anomaly,
        impossible_velocity=moved,
        failed_sign_ins=failed_sign_ins,
        rate_limited=rate_limited,
        detector_flags=detector_flags,
    )


class SignalSources:
    """Reads the signals of a request (module docstring)."""

    def __init__(
        self,
        *,
        devices: DeviceStore | None,
        hot: HotStore,
        clock: Clock,
        clients: Mapping[str, ClientDeviceSettings],
        velocity_window: float = 0.0,
        throttle: FailedSignIns | None = None,
        usernames: Callable[[str], Awaitable[str | None]] | None = None,
        detectors: Detectors | None = None,
    ) -> None:
        self._devices = devices
        self._hot = hot
        self._clock = clock
        self._clients = clients
        self._window = velocity_window
        self._throttle = throttle
        self._usernames = usernames
        self._detectors = detectors or NoDetectors()
        self._last_known: TTLCache[str, Device] = TTLCache(clock, LAST_KNOWN_ENTRIES)
        self._fresh: TTLCache[str, Device] = TTLCache(clock, LAST_KNOWN_ENTRIES)
        self._names: TTLCache[str, str] = TTLCache(clock, LAST_KNOWN_ENTRIES)

    async def device(self, jkt: str | None, request: RiskRequest | None = None) -> Found:
        if request is not None and (request.known is not None or request.outage):
            known = request.known
            if known is not None and not request.outage:
                # Verified on this very request (the gateway's assertion step).
                known = asserted(known, self._clock.now())
            return _usable(known, unavailable=request.outage)
        if jkt is None or self._devices is None:
            return Found(None)
        fresh = self._fresh.get(jkt)
        if fresh is not None:
            return _usable(fresh)
        try:
            device = await self._devices.by_jkt(jkt)
        except OUTAGES as exc:
            log.warning("device records unavailable: %s", type(exc).__name__)
            return _usable(self._last_known.get(jkt), unavailable=True)
        if device is None:
            self._last_known.pop(jkt)
            return Found(None)
        now = self._clock.now()
        self._last_known.set(jkt, device, now + LAST_KNOWN_FOR)
        self._fresh.set(jkt, device, now + FRESH_FOR)
        return _usable(device)

    async def bind(self, jkt: str, user_id: str) -> None:
        """Record that ``user_id`` uses the device ``jkt`` is bound to (after tokens were
        issued to it with that key proved), so that ``new_device`` no longer counts for
        them. Best effort: a store that cannot be reached leaves the user new."""
        if self._devices is None:
            return
        try:
            device = await self._devices.by_jkt(jkt)
            if device is not None and not device.revoked and user_id not in device.user_ids:
                await self._devices.seen(device.device_id, self._clock.now(), user_id=user_id)
                self._last_known.pop(jkt)
                self._fresh.pop(jkt)
        except OUTAGES as exc:
            log.warning("device user not recorded: %s", type(exc).__name__)

    async def gather(self, request: RiskRequest, found: Found) -> Signals:
        now = self._clock.now()
        device, user = found.device, request.user_id
        anomaly = moved = False
        failed, limited, unavailable = request.failed_sign_ins or 0, 0, False
        try:
            if device is not None:
                anomaly = await anomalies.reason(self._hot, device.device_id) is not None
            if user is not None:
                moved = await velocity.observe(self._hot, user, request.ip, now, self._window)
                limited = await hits.recent(self._hot, user)
                if request.failed_sign_ins is None:
                    failed = await self._failures(user)
        except OUTAGES as exc:
            # A counter anomaly cannot be ruled out: the device's standing is unknown.
            log.warning("risk signals unavailable: %s", type(exc).__name__)
            unavailable = True
        flags = await self._detectors.flags(request)
        app = app_client_id(request.client_id, device or found.revoked)
        client = None if app is None else self._clients.get(app)
        return compose(
            request,
            found,
            client,
            now,
            anomaly=anomaly,
            moved=moved,
            failed_sign_ins=failed,
            rate_limited=limited,
            detector_flags=flags,
            unavailable=unavailable,
        )

    async def _failures(self, user_id: str) -> int:
        if self._throttle is None or self._usernames is None:
            return 0
        username = self._names.get(user_id)
        if username is None:
            username = await self._usernames(user_id)
            if username is None:
                return 0
            self._names.set(user_id, username, self._clock.now() + USERNAMES_FOR)
        return await self._throttle.failures(username)


def _usable(device: Device | None, *, unavailable: bool = False) -> Found:
    if device is not None and device.revoked:
        return Found(None, revoked=device, unavailable=unavailable)
    return Found(device, unavailable=unavailable)
