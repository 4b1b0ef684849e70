"""Device anomalies remembered in hot state: evidence that an installation's key is
used by a copy (two different assertions with the same App Attest counter, an App
Attest key offered by a second installation), which the risk engine then sees as
``counter_anomaly`` on every later request of that device, on every worker.

A mark is kept until an operator revokes the device (``bastion devices revoke``, the
admin API): nothing the device does clears it. It does not expire, since a copy that
waited out a lifetime would be clean again, and a re-attestation that replaces the
record (the same DPoP key with a new App Attest key) carries it to the new record
(``carry``), since otherwise a flagged installation would launder itself by attesting
again.
"""

from __future__ import annotations

from bastion.store.protocols import HotStore

_PREFIX = "device-anomaly:"
# Kept for callers that name it; a mark no longer expires (module docstring).
REMEMBERED = 30 * 86_400.0


async def mark(hot: HotStore, device_id: str, reason: str) -> None:
    await hot.set(_PREFIX + device_id, reason.encode("ascii"), ttl=None)


async def reason(hot: HotStore, device_id: str) -> str | None:
    """The last anomaly seen on the device, or None."""
    value = await hot.get(_PREFIX + device_id)
    return None if value is None else value.decode("ascii", "replace")


async def carry(hot: HotStore, old_device_id: str, new_device_id: str) -> str | None:
    """Give the record that replaces ``old_device_id`` its mark, if it has one; the
    reason carried, or None."""
    found = await reason(hot, old_device_id)
    if found is not None:
        await mark(hot, new_device_id, found)
    return found


async def clear(hot: HotStore, device_id: str) -> None:
    """Only an operator's revocation calls this (``bastion.authserver.devices``)."""
    await hot.delete(_PREFIX + device_id)
