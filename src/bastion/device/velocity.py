"""The impossible-velocity signal: a user seen from another source network too soon.

There is no geolocation here (no address database ships with Bastion), so this is a
network-change heuristic, not a distance: each user's last source network (the /24 of
an IPv4 address, the /48 of an IPv6 one; an IPv4-mapped IPv6 address counts as IPv4)
and when it was seen are kept in hot state, and a request from a *different* network
within ``window`` seconds raises the signal. Honest phones trip it too: moving from
Wi-Fi to mobile data changes the network in seconds. That is why the window is off
(0) unless configured, and why a policy should give it points that step up rather than
deny. A source that is not an IP address (a test client, a Unix socket) is never judged.
"""

from __future__ import annotations

import hashlib
import ipaddress

from bastion.store.protocols import HotStore

_PREFIX = "device-velocity:"


def network_of(ip: str | None) -> str | None:
    """The source network of an address (/24 IPv4, /48 IPv6), or None."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    bits = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network((address, bits), strict=False))


def moved(previous: bytes | None, network: str, now: float, window: float) -> bool:
    """Whether the last sighting (``b"<time>|<network>"``) was another network less than
    ``window`` seconds before ``now`` (pure; a malformed record says nothing)."""
    if previous is None:
        return False
    seen, _, last = previous.decode("ascii", "replace").partition("|")
    try:
        at = float(seen)
    except ValueError:
        return False
    return last != network and 0 <= now - at < window


async def observe(hot: HotStore, user: str, ip: str | None, now: float, window: float) -> bool:
    """Record this request's network for ``user`` and say whether it moved too fast.
    ``StoreUnavailable`` propagates (the caller treats hot state being down as an
    outage)."""
    network = network_of(ip)
    if window <= 0 or network is None:
        return False
    # The user id is hashed so that no identifier shapes a key.
    key = _PREFIX + hashlib.blake2b(user.encode(), digest_size=16).hexdigest()
    previous = await hot.get(key)
    await hot.set(key, f"{now!r}|{network}".encode("ascii"), ttl=window)
    return moved(previous, network, now, window)
