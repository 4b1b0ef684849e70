"""Device operations shared by ``bastion devices`` and the admin API: how a device record
is shown, and revoking a device, which revokes what it holds.

A revoked device's tokens stop working at once: every refresh family bound to its DPoP
key (RFC 9449 §5 binds a public client's family to the key for its whole life) is
revoked, which denylists the family's live access tokens too; a per-installation client
it registered (RFC 7591) is disabled and its families revoked. Its anomaly mark is
cleared, since the record now says more than the mark did, and ``device.revoked`` is
audited. The steps are idempotent, so revoking again finishes a revocation that was
interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from bastion.audit import AuditEvent, Outcome
from bastion.authserver.server import AuthServer
from bastion.device import anomalies
from bastion.device.records import Device
from bastion.errors import NotFound

# The reason recorded on the refresh families a device revocation ends.
FAMILY_REASON = "device_revoked"


@dataclass(frozen=True)
class DeviceRevocation:
    device: Device
    # True when the device was revoked before this call, which only finished the job.
    already_revoked: bool
    families: int


def describe(device: Device) -> dict[str, Any]:
    """A device for operators: what it is and what it holds, never key material (the
    App Attest key and receipt stay in the database; the encryption key is only said
    to be there)."""
    return {
        "device_id": device.device_id,
        "platform": device.platform,
        "client_id": device.client_id,
        "registered_client_id": device.registered_client_id,
        "level": device.level,
        "app_version": device.app_version,
        "key_id": device.key_id,
        "environment": device.environment,
        "verdict": None if device.verdict is None else dict(device.verdict),
        "counter": device.counter,
        "dpop_jkt": device.dpop_jkt,
        "encryption_key": device.encryption_key is not None,
        "users": list(device.user_ids),
        "first_seen": device.first_seen,
        "last_seen": device.last_seen,
        "attested_at": device.attested_at,
        "revoked_at": device.revoked_at,
        "revoked_reason": device.revoked_reason,
    }


async def get_device(server: AuthServer, device_id: str) -> Device:
    device = await server.devices.get(device_id)
    if device is None:
        raise NotFound(f"no device {device_id!r}")
    return device


async def revoke_device(
    server: AuthServer, device_id: str, reason: str, actor: str
) -> DeviceRevocation:
    """Revoke the device and everything issued to it; ``NotFound`` if there is none.
    ``reason`` (at most 200 characters) is kept on the record and in the audit trail."""
    now = server.clock.now()
    before = await server.devices.revoke(device_id, now, reason)
    device = before or await get_device(server, device_id)
    families: list[str] = []
    jkt = device.dpop_jkt
    if jkt is not None and (before is not None or await _still_holds(server, device_id, jkt)):
        families += await server.access.revoke_families(FAMILY_REASON, actor, dpop_jkt=jkt)
    if device.registered_client_id is not None:
        families += await _end_registered_client(server, device.registered_client_id, actor)
    await anomalies.clear(server.hot, device_id)
    server.audit.emit(
        AuditEvent(
            "device.revoked",
            Outcome.SUCCESS,
            actor=actor,
            target=device_id,
            policy=FAMILY_REASON,
            details={
                "reason": reason,
                "already_revoked": before is None,
                "platform": device.platform,
                "client_id": device.client_id,
                "families": len(families),
            },
        )
    )
    return DeviceRevocation(await get_device(server, device_id), before is None, len(families))


async def _still_holds(server: AuthServer, device_id: str, jkt: str) -> bool:
    """Whether the DPoP key is still this device's: once a device is revoked its key is
    free, and a later installation may hold it; revoking again must not reach that one."""
    holder = await server.devices.by_jkt(jkt)
    return holder is not None and holder.device_id == device_id


async def _end_registered_client(server: AuthServer, client_id: str, actor: str) -> list[str]:
    """A per-installation client serves this installation only: disabled, its grants end."""
    client = await server.clients.store.get(client_id)
    if client is not None and client.enabled and client_id not in server.clients.declared:
        await server.clients.store.update(replace(client, enabled=False), server.clock.now())
    return await server.access.revoke_families(FAMILY_REASON, actor, client_id=client_id)
