"""The device-trust service: challenges, attestations and per-request assertions, with
the stores, the audit trail and the trust anchors around the pure cores
(``app_attest``, ``play_integrity``, ``binding``).

Every verification consumes a one-time challenge bound to the client first, whatever
follows, so nothing the device sends can be tried twice. Every outcome is one audit
event (``device.attestation`` or ``device.assertion``) with a one-word ``reason``; a
refusal raises ``DeviceRefused`` with that reason, a verification that cannot be made
(trust data unavailable) ``DeviceUnverifiable``, and a hot store that cannot answer
``StoreUnavailable`` (fail closed: a challenge that cannot be checked is not accepted).

Levels recorded: App Attest proves a genuine build of the declared app holding a key
made in the Secure Enclave of a genuine Apple device; it says nothing of jailbreaks or
patch level, so an App Attest device is ``device``, never ``strong``. Play Integrity's
level is the strongest device label of the verdict (``strong``, ``device``, ``basic``,
else ``none``).
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn

from cryptography import x509

from bastion.audit import AuditEvent, AuditPipeline, Outcome
from bastion.clock import Clock
from bastion.config import Settings
from bastion.device import android, anomalies, apple, binding
from bastion.device.apple import UNVERIFIABLE
from bastion.device.challenges import Challenge, DeviceChallenges
from bastion.device.play_integrity import Decoder, Verdict
from bastion.device.records import Device, DeviceStore, Platform
from bastion.device.settings import (
    AndroidAppSettings,
    AppleAppSettings,
    ClientDeviceSettings,
)
from bastion.errors import (
    AttestationError,
    DeviceKeyInUse,
    DeviceRefused,
    DeviceUnverifiable,
    IntegrityError,
    ProblemError,
)
from bastion.store.protocols import HotStore

log = logging.getLogger("bastion.device")

Action = Literal["device.attestation", "device.assertion"]
Mode = Literal["enforce", "audit"]
# The policy mode of the assertion being verified (``verify_assertion``), read when its
# outcome is recorded.
_MODE: contextvars.ContextVar[Mode] = contextvars.ContextVar("device_assertion_mode")
ATTESTATION: Final = "device.attestation"
ASSERTION: Final = "device.assertion"
ENCRYPTION_KEY = "device.encryption_key"

# What the device is told: one answer per kind of verification whatever failed, a
# challenge included (unknown, used, expired or another app's are told apart in the
# audit trail only), so a probe learns nothing about which check refused it. An honest
# app that is refused asks for a new challenge and tries once more.
REFUSED: dict[str, str] = {
    ATTESTATION: "The device attestation was refused.",
    ASSERTION: "The device assertion was refused.",
}


@dataclass(frozen=True)
class Attested:
    """A verified attestation's device, and whether it is new (else re-attested)."""

    device: Device
    created: bool


class DeviceTrust:
    def __init__(
        self,
        settings: Settings,
        devices: DeviceStore,
        hot: HotStore,
        audit: AuditPipeline,
        clock: Clock,
        decoder: Decoder | None = None,
    ) -> None:
        self.settings = settings.device
        self.devices = devices
        self.hot = hot
        self.challenges = DeviceChallenges(hot, clock, self.settings.challenge_lifetime)
        self.audit = audit
        self.clock = clock
        self.decoder = decoder
        self.apps: dict[str, ClientDeviceSettings] = {
            c.client_id: c.device for c in settings.oauth.clients if c.device is not None
        }
        self._root: x509.Certificate | None = None
        self._console_keys: dict[str, android.ConsoleKeys] = {}

    # Challenges.

    def app(self, client_id: str) -> ClientDeviceSettings:
        declared = self.apps.get(client_id)
        if declared is None or (declared.apple is None and declared.android is None):
            # Deny by default: a client that declares no app has no challenges (400).
            raise ProblemError("No app is declared for this client.")
        return declared

    async def challenge(self, client_id: str) -> Challenge:
        """A one-time challenge for a client that declares an app (400 ``ProblemError``
        otherwise). ``StoreUnavailable`` when hot state cannot answer."""
        self.app(client_id)
        return await self.challenges.issue(client_id)

    async def _consume(
        self, action: Action, client_id: str, platform: Platform, challenge: str
    ) -> None:
        if not await self.challenges.consume(client_id, challenge):
            self._refuse(action, client_id, platform, "challenge_invalid")

    # Attestation.

    async def attest_apple(
        self,
        *,
        client_id: str,
        key_id: str,
        attestation_object: bytes,
        challenge: str,
        dpop_jkt: str,
        app_version: str | None,
    ) -> Device:
        """Verify an App Attest attestation made over ``challenge "." dpop_jkt`` and
        record the installation (Apple, "Validating apps that connect to your server")."""
        action: Action = ATTESTATION
        declared = self._apple(action, client_id)
        await self._consume(action, client_id, "ios", challenge)
        client_data = binding.attestation_client_data(challenge, dpop_jkt)
        now = self.clock.now()
        try:
            raw_key_id = apple.key_id_bytes(key_id)
            attested = apple.verify_attestation(
                declared,
                attestation_object=attestation_object,
                client_data=client_data,
                key_id=raw_key_id,
                now=now,
                root=self._apple_root(action, client_id),
            )
        except AttestationError as exc:
            reason = "wrong_app" if exc.reason == "rp_id_mismatch" else exc.reason
            self._refuse(action, client_id, "ios", reason)
        key_id = binding.b64url(raw_key_id)
        if (existing := await self.devices.by_key_id(key_id)) is not None:
            await self._key_reused(action, client_id, existing)
        device_id = _new_id()
        await self._supersede(action, client_id, "ios", dpop_jkt, now, device_id)
        device = Device(
            device_id=device_id,
            platform="ios",
            client_id=client_id,
            level="device",
            first_seen=now,
            last_seen=now,
            attested_at=now,
            key_id=key_id,
            public_key=apple.public_key_der(attested.public_key),
            counter=attested.counter,
            environment=attested.environment,
            receipt=attested.receipt,
            app_version=app_version,
            dpop_jkt=dpop_jkt,
        )
        try:
            await self.devices.add(device)
        except DeviceKeyInUse:
            # Lost a race: the same key id or DPoP key recorded meanwhile.
            if (existing := await self.devices.by_key_id(key_id)) is not None:
                await self._key_reused(action, client_id, existing)
            self._refuse(action, client_id, "ios", "dpop_key_in_use")
        self._succeeded(action, device, created=True)
        return device

    async def attest_google(
        self,
        *,
        client_id: str,
        token: str,
        challenge: str,
        dpop_jkt: str,
        app_version: str | None,
    ) -> Device:
        """``attest_google_outcome``'s device."""
        outcome = await self.attest_google_outcome(
            client_id=client_id,
            token=token,
            challenge=challenge,
            dpop_jkt=dpop_jkt,
            app_version=app_version,
        )
        return outcome.device

    async def attest_google_outcome(
        self,
        *,
        client_id: str,
        token: str,
        challenge: str,
        dpop_jkt: str,
        app_version: str | None,
    ) -> Attested:
        """Verify a Play Integrity verdict made over ``challenge "." dpop_jkt`` and record
        the installation, or update it when its DPoP key already names it (Play
        Integrity verdicts are asked for again; the installation stays the same)."""
        action: Action = ATTESTATION
        declared = self._android(action, client_id)
        await self._consume(action, client_id, "android", challenge)
        client_data = binding.attestation_client_data(challenge, dpop_jkt)
        verdict = await self._verdict(action, client_id, declared, token, client_data)
        level, summary, now = android.level(verdict), android.summary(verdict), self.clock.now()
        existing = await self.devices.by_jkt(dpop_jkt)
        if (
            existing is not None
            and existing.client_id == client_id
            and existing.platform == "android"
            and not existing.revoked
        ):
            await self.devices.reattest(
                existing.device_id, level=level, verdict=summary, app_version=app_version, now=now
            )
            device = dataclasses.replace(
                existing,
                level=level,
                verdict=summary,
                app_version=app_version or existing.app_version,
                attested_at=now,
                last_seen=now,
            )
            self._succeeded(action, device, created=False)
            return Attested(device, created=False)
        device_id = _new_id()
        await self._supersede(action, client_id, "android", dpop_jkt, now, device_id)
        device = Device(
            device_id=device_id,
            platform="android",
            client_id=client_id,
            level=level,
            first_seen=now,
            last_seen=now,
            attested_at=now,
            verdict=summary,
            app_version=app_version,
            dpop_jkt=dpop_jkt,
        )
        try:
            await self.devices.add(device)
        except DeviceKeyInUse:
            self._refuse(action, client_id, "android", "dpop_key_in_use")
        self._succeeded(action, device, created=True)
        return Attested(device, created=True)

    async def _supersede(
        self,
        action: Action,
        client_id: str,
        platform: Platform,
        jkt: str,
        now: float,
        new_device_id: str,
    ) -> None:
        """A DPoP key already bound to a device: the same app on the same platform
        attesting again (an app reinstalled keeps its keychain, not its App Attest key)
        replaces the old record; any other binding is refused. A revoked device's key
        stays revoked: it cannot attest its way back.

        The old record's anomaly mark (clone evidence) passes to ``new_device_id``
        before the new record exists, so no request ever sees the replacement clean:
        the same DPoP key is the same installation, and a flagged installation must not
        shed its mark by attesting a fresh key. Only an operator's revocation clears
        it."""
        bound = await self.devices.by_jkt(jkt)
        if bound is None:
            return
        if bound.revoked:
            self._refuse(action, client_id, platform, "device_revoked", device=bound)
        if bound.client_id != client_id or bound.platform != platform:
            self._refuse(action, client_id, platform, "dpop_key_in_use", device=bound)
        carried = await anomalies.carry(self.hot, bound.device_id, new_device_id)
        if carried is not None:
            self._emit(
                action,
                Outcome.SUCCESS,
                client_id,
                platform,
                "anomaly_carried",
                bound,
                anomaly=carried,
                replaced_by=new_device_id,
            )
        await self.devices.revoke(bound.device_id, now, "superseded")

    async def _key_reused(self, action: Action, client_id: str, existing: Device) -> NoReturn:
        # An App Attest key lives in one installation's Secure Enclave: a second
        # attestation of it is a copy of that installation (a cloned app).
        await anomalies.mark(self.hot, existing.device_id, "key_reused")
        self._refuse(action, client_id, "ios", "key_reused", device=existing)

    # Assertions.

    async def verify_assertion(
        self,
        *,
        client_id: str,
        method: str,
        target: str,
        body: bytes,
        header_values: list[bytes],
        device: Device | None,
        mode: Mode = "enforce",
    ) -> Device:
        """Verify the ``Device-Assertion`` of one request (``binding`` says what it
        signs) and return the device that made it, with its new counter or verdict.

        ``device`` is the device bound to the caller's DPoP key (the access token's
        ``cnf.jkt`` at the gateway, the DPoP proof's key at ``/token``): the assertion
        must be that device's. Without one the request is refused (``unknown_device``):
        an assertion proves that a genuine app made the request, and a caller whose key
        names no attested installation would otherwise borrow one made by someone
        else's device. A per-installation client made by attested registration speaks
        for the app its device attested for.

        ``mode`` is the policy's: in ``"audit"`` a refusal still raises
        ``DeviceRefused`` (the caller lets the request go on) but its audit event says
        that nothing was enforced (outcome ``success``, ``decided`` ``refused``).
        Clone evidence (``counter_replayed``, ``key_reused``) marks the device in
        either mode: it is evidence about the device, not this route's enforcement."""
        token = _MODE.set(mode)
        try:
            return await self._verify_assertion(
                client_id, method, target, body, header_values, device
            )
        finally:
            _MODE.reset(token)

    async def _verify_assertion(
        self,
        client_id: str,
        method: str,
        target: str,
        body: bytes,
        header_values: list[bytes],
        device: Device | None,
    ) -> Device:
        action: Action = ASSERTION
        if device is not None and device.registered_client_id == client_id:
            client_id = device.client_id
        platform: Platform = device.platform if device is not None else "ios"
        if not header_values:
            self._refuse(action, client_id, platform, "assertion_missing", device=device)
        try:
            header = binding.parse_assertion_header(header_values)
        except ValueError:
            self._refuse(action, client_id, platform, "assertion_malformed", device=device)
        platform = "ios" if header.key_id is not None else "android"
        await self._consume(action, client_id, platform, header.challenge)
        if device is None:
            self._refuse(action, client_id, platform, "unknown_device")
        client_data = binding.request_client_data(method, target, body, header.challenge)
        if header.key_id is not None and header.assertion is not None:
            return await self._apple_assertion(
                client_id, header.key_id, header.assertion, client_data, device
            )
        assert header.integrity_token is not None
        return await self._google_assertion(client_id, header.integrity_token, client_data, device)

    async def _apple_assertion(
        self,
        client_id: str,
        key_id: str,
        assertion: bytes,
        client_data: bytes,
        device: Device,
    ) -> Device:
        action: Action = ASSERTION
        declared = self._apple(action, client_id)
        record = await self.devices.by_key_id(key_id)
        if (
            record is None
            or record.client_id != client_id
            or record.platform != "ios"
            or record.public_key is None
        ):
            self._refuse(action, client_id, "ios", "unknown_key")
        if record.revoked:
            self._refuse(action, client_id, "ios", "device_revoked", device=record)
        if device.device_id != record.device_id:
            self._refuse(action, client_id, "ios", "wrong_device", device=record)
        try:
            # Apple's step 5 (the counter grows) is judged below against the stored
            # counter, because a lower counter and an equal one mean different things;
            # the core checks only that the counter is past the attestation's zero.
            counter = apple.verify_assertion(
                declared,
                assertion=assertion,
                client_data=client_data,
                public_key_der=record.public_key,
                previous_counter=0,
            )
        except AttestationError as exc:
            reason = "wrong_app" if exc.reason == "rp_id_mismatch" else exc.reason
            self._refuse(action, client_id, "ios", reason, device=record)
        await self._check_counter(client_id, record, counter)
        now = self.clock.now()
        # Checked and stored in one statement: of two assertions with the same counter
        # (two copies of one key racing), exactly one gets here with True.
        if not await self.devices.advance_counter(record.device_id, counter, now):
            current = await self.devices.get(record.device_id)
            if current is None or current.revoked:
                self._refuse(action, client_id, "ios", "device_revoked", device=record)
            await self._check_counter(client_id, current, counter)
            self._refuse(action, client_id, "ios", "counter_not_increasing", device=record)
        advanced = dataclasses.replace(record, counter=counter, last_seen=now)
        self._succeeded(action, advanced, created=False)
        return advanced

    async def _check_counter(self, client_id: str, record: Device, counter: int) -> None:
        """Apple, "Validating apps that connect to your server", "Verify the assertion",
        step 5: the counter must be greater than the stored one. How a counter that is
        not is read:

        - **lower** than the stored one: refused (``counter_not_increasing``), and that
          is all. The key lives in the Secure Enclave and cannot be exported, and every
          assertion here signs a one-time challenge, so a lower counter is not a replay
          or a copy: it is an honest app whose requests arrived out of order (two made
          at once, delivered the other way round). Branding the device a clone would
          lock an honest user out; the request is refused and the app retries;
        - **equal** to the stored one: two different assertions (each over its own
          fresh challenge) with one counter, which one genuine key never makes, since
          the enclave moves the counter with every signature. That is clone evidence:
          refused (``counter_replayed``) and the device marked (``anomalies``)."""
        if counter == record.counter:
            await self._replayed(client_id, record)
        if counter < record.counter:
            self._refuse(ASSERTION, client_id, "ios", "counter_not_increasing", device=record)

    async def _replayed(self, client_id: str, record: Device) -> NoReturn:
        # Remembered, so the risk engine sees it on every later request (anomalies).
        await anomalies.mark(self.hot, record.device_id, "counter_replayed")
        self._refuse(ASSERTION, client_id, "ios", "counter_replayed", device=record)

    async def _google_assertion(
        self, client_id: str, token: str, client_data: bytes, device: Device
    ) -> Device:
        action: Action = ASSERTION
        declared = self._android(action, client_id)
        if device.client_id != client_id or device.platform != "android":
            self._refuse(action, client_id, "android", "unknown_device", device=device)
        if device.revoked:
            self._refuse(action, client_id, "android", "device_revoked", device=device)
        verdict = await self._verdict(action, client_id, declared, token, client_data, device)
        level, summary, now = android.level(verdict), android.summary(verdict), self.clock.now()
        await self.devices.reattest(
            device.device_id, level=level, verdict=summary, app_version=None, now=now
        )
        fresh = dataclasses.replace(
            device, level=level, verdict=summary, attested_at=now, last_seen=now
        )
        self._succeeded(action, fresh, created=False)
        return fresh

    # The installation's encryption key.

    async def device_for_key(self, jkt: str, action: str) -> Device:
        """The device, not revoked, a proven DPoP key is bound to; ``DeviceRefused``
        ("unknown_device", audited under ``action``) otherwise."""
        device = await self.devices.by_jkt(jkt)
        if device is None or device.revoked:
            client_id = "" if device is None else device.client_id
            self._emit(action, Outcome.DENIED, client_id, None, "unknown_device", device)
            raise DeviceRefused("No attested device holds this key.", "unknown_device")
        return device

    async def register_encryption_key(self, device: Device, jwk: Mapping[str, Any]) -> None:
        """Store the installation's public encryption JWK (``encryption_key`` checked it)."""
        await self.devices.set_encryption_key(device.device_id, jwk)
        self._emit(
            ENCRYPTION_KEY, Outcome.SUCCESS, device.client_id, device.platform, "registered", device
        )

    # Trust data.

    def _apple(self, action: Action, client_id: str) -> AppleAppSettings:
        app = self.apps.get(client_id)
        declared = None if app is None else app.apple
        if declared is None:
            self._refuse(action, client_id, "ios", "platform_not_declared")
        return declared

    def _android(self, action: Action, client_id: str) -> AndroidAppSettings:
        app = self.apps.get(client_id)
        declared = None if app is None else app.android
        if declared is None:
            self._refuse(action, client_id, "android", "platform_not_declared")
        return declared

    def _apple_root(self, action: Action, client_id: str) -> x509.Certificate:
        if self._root is None:
            try:
                self._root = apple.load_root(self.settings.apple_root_file)
            except DeviceUnverifiable as exc:
                self._unverifiable(action, client_id, "ios", exc.reason, exc)
        return self._root

    async def _verdict(
        self,
        action: Action,
        client_id: str,
        declared: AndroidAppSettings,
        token: str,
        client_data: bytes,
        device: Device | None = None,
    ) -> Verdict:
        payload: Mapping[str, Any]
        try:
            if declared.verifies_locally:
                payload = android.decode_locally(token, self._keys(action, client_id, declared))
            else:
                payload = await self._decode(action, client_id, declared, token)
            return android.check(payload, declared, client_data, self.clock.now())
        except IntegrityError as exc:
            self._refuse(action, client_id, "android", exc.reason, device=device)

    def _keys(
        self, action: Action, client_id: str, declared: AndroidAppSettings
    ) -> android.ConsoleKeys:
        keys = self._console_keys.get(client_id)
        if keys is None:
            try:
                keys = self._console_keys[client_id] = android.load_console_keys(declared)
            except DeviceUnverifiable as exc:
                self._unverifiable(action, client_id, "android", exc.reason, exc)
        return keys

    async def _decode(
        self, action: Action, client_id: str, declared: AndroidAppSettings, token: str
    ) -> Mapping[str, Any]:
        if self.decoder is None:
            self._unverifiable(action, client_id, "android", "no_decoder", None)
        try:
            return await self.decoder.decode(declared.package_name, token)
        except IntegrityError:
            raise
        except Exception as exc:
            # Decoder errors are the implementation's (HTTP, credentials, timeouts): the
            # token was not judged, so the device is not refused for them.
            self._unverifiable(action, client_id, "android", "decoder_unavailable", exc)

    # Outcomes.

    def refuse_assertion(
        self, client_id: str, reason: str, detail: str | None = None, mode: Mode = "enforce"
    ) -> NoReturn:
        """Refuse (and audit) a request that cannot carry an assertion at all, such as
        one with no client to hold to account or no DPoP key to name its device. In
        ``"audit"`` mode the event records the refusal as decided, not enforced; the
        caller lets the request go on."""
        token = _MODE.set(mode)
        try:
            self._refuse(ASSERTION, client_id, None, reason, detail)
        finally:
            _MODE.reset(token)

    def _refuse(
        self,
        action: Action,
        client_id: str,
        platform: Platform | None,
        reason: str,
        detail: str | None = None,
        *,
        device: Device | None = None,
    ) -> NoReturn:
        self._emit(action, Outcome.DENIED, client_id, platform, reason, device)
        raise DeviceRefused(detail or REFUSED[action], reason)

    def _unverifiable(
        self,
        action: Action,
        client_id: str,
        platform: Platform,
        reason: str,
        exc: BaseException | None,
    ) -> NoReturn:
        log.warning("device %s for %s cannot be verified: %s (%s)", action, client_id, reason, exc)
        self._emit(action, Outcome.FAILURE, client_id, platform, reason, None)
        raise DeviceUnverifiable(UNVERIFIABLE, reason) from exc

    def _succeeded(self, action: Action, device: Device, *, created: bool) -> None:
        details = {"level": device.level, "created": created} if action == ATTESTATION else {}
        self._emit(
            action,
            Outcome.SUCCESS,
            device.client_id,
            device.platform,
            "verified",
            device,
            **details,
        )

    def _emit(
        self,
        action: str,
        outcome: Outcome,
        client_id: str,
        platform: Platform | None,
        reason: str,
        device: Device | None,
        **extra: object,
    ) -> None:
        if action == ASSERTION:
            mode = _MODE.get("enforce")
            extra = {"mode": mode, **extra}
            if mode == "audit" and outcome is Outcome.DENIED:
                # Audit mode decides and records, enforces nothing: the refusal it
                # would have made is ``decided``, and nothing was refused.
                outcome, extra = Outcome.SUCCESS, {"decided": "refused", **extra}
        self.audit.emit(
            AuditEvent(
                action,
                outcome,
                actor=f"client:{client_id}",
                target=None if device is None else f"device:{device.device_id}",
                details={"platform": platform, "reason": reason, **extra},
            )
        )


def _new_id() -> str:
    return secrets.token_urlsafe(16)
