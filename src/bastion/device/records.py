"""Device records: one per app installation that proved itself with an attestation.

A record holds what the platform vouched for (the App Attest key and its counter, or
the last Play Integrity verdict), the installation's DPoP key thumbprint (bound at
attestation, so later proofs with that key inherit the device's standing), an optional
encryption key (JWK, ``use=enc``, P-256, for ECDH-ES+A256KW) and the users and clients
it served. The SQL implementation is ``bastion.store.sql.devices``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Platform = Literal["ios", "android"]
# bastion.device.risk.AttestationLevel names, lower case.
Level = Literal["none", "basic", "device", "strong"]


@dataclass(frozen=True)
class Device:
    device_id: str
    platform: Platform
    # The client (app) the installation attested for.
    client_id: str
    level: Level
    first_seen: float
    last_seen: float
    # When the platform last vouched for the installation: its latest attestation, or
    # for App Attest its latest verified assertion (signed by the attested key).
    attested_at: float
    # App Attest: the key id (base64url of the 32 raw bytes), the key (SubjectPublicKeyInfo
    # DER), the last counter seen, the environment and Apple's receipt.
    key_id: str | None = None
    public_key: bytes | None = field(default=None, repr=False)
    counter: int = 0
    environment: str | None = None
    receipt: bytes | None = field(default=None, repr=False)
    # Play Integrity: the last verdict that passed, as a summary (labels, recognition,
    # licensing, play protect, apps detected, version code); no token.
    verdict: Mapping[str, Any] | None = None
    app_version: str | None = None
    # RFC 7638 thumbprint of the installation's DPoP key.
    dpop_jkt: str | None = None
    # The public JWK the installation registered for encryption to it.
    encryption_key: Mapping[str, Any] | None = None
    # A per-installation client made by attestation-gated registration (RFC 7591).
    registered_client_id: str | None = None
    user_ids: tuple[str, ...] = ()
    revoked_at: float | None = None
    revoked_reason: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class DeviceStore(Protocol):
    """Device records. Every method is one transaction."""

    async def add(self, device: Device) -> None:
        """Insert a new record. Raises ``DeviceKeyInUse`` when its App Attest key id is
        already recorded (one key, one installation) or its DPoP thumbprint is bound
        to another device that is not revoked."""
        ...

    async def get(self, device_id: str) -> Device | None: ...

    async def by_key_id(self, key_id: str) -> Device | None: ...

    async def by_jkt(self, jkt: str) -> Device | None:
        """The device, revoked or not, that this DPoP key thumbprint is bound to."""
        ...

    async def advance_counter(self, device_id: str, counter: int, now: float) -> bool:
        """Store an assertion's counter if it is greater than the stored one and the
        device is not revoked, in one statement; False otherwise (of two racing
        assertions with the same counter, exactly one gets True). A counter stored
        moves ``attested_at`` and ``last_seen`` to ``now`` (never back): an App Attest
        assertion is signed by the attested key, fresh evidence that it is still there."""
        ...

    async def reattest(
        self,
        device_id: str,
        *,
        level: Level,
        verdict: Mapping[str, Any] | None,
        app_version: str | None,
        now: float,
    ) -> None:
        """Record a newer attestation of the same installation (Play Integrity verdicts
        are asked for again; App Attest keys are attested once)."""
        ...

    async def seen(
        self,
        device_id: str,
        now: float,
        *,
        user_id: str | None = None,
        app_version: str | None = None,
    ) -> None:
        """Move ``last_seen``; add ``user_id`` to the users bound if it is new."""
        ...

    async def set_encryption_key(self, device_id: str, jwk: Mapping[str, Any]) -> None: ...

    async def set_registered_client(self, device_id: str, client_id: str) -> None: ...

    async def list_devices(
        self,
        *,
        user_id: str | None = None,
        client_id: str | None = None,
        include_revoked: bool = False,
        limit: int = 100,
    ) -> list[Device]:
        """Most recently seen first."""
        ...

    async def revoke(self, device_id: str, now: float, reason: str) -> Device | None:
        """Mark the device revoked (its assertions and DPoP key stop counting); the
        record as it was before, or None when there is none or it already was."""
        ...
