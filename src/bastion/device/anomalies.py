"""Device anomalies remembered in hot state: evidence that an installation's key is
used by a copy (a counter that went backwards, an App Attest key offered by a second
installation), which the risk engine then sees as ``counter_anomaly`` on every later
request of that device, on every worker."""

from __future__ import annotations

from bastion.store.protocols import HotStore

_PREFIX = "device-anomaly:"
# Long enough to outlive the tokens the copy may hold; an operator clears it by
# revoking the device.
REMEMBERED = 30 * 86_400.0


async def mark(hot: HotStore, device_id: str, reason: str) -> None:
    await hot.set(_PREFIX + device_id, reason.encode("ascii"), ttl=REMEMBERED)


async def reason(hot: HotStore, device_id: str) -> str | None:
    """The last anomaly seen on the device, or None."""
    value = await hot.get(_PREFIX + device_id)
    return None if value is None else value.decode("ascii", "replace")


async def clear(hot: HotStore, device_id: str) -> None:
    await hot.delete(_PREFIX + device_id)
