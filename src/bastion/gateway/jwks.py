"""Public keys of an external issuer, fetched from its JWKS URI and cached.

- A cached key set is used until ``jwks_max_age``; then it is refetched.
- A token naming an unknown ``kid`` triggers a refetch (the issuer may have rotated),
  but at most once per ``jwks_min_refresh_interval``, so forged ``kid`` values cannot
  turn the gateway into a flood against the issuer.
- During a JWKS outage the last good key set keeps serving (fail static); only with no
  key set at all does verification fail, with ``StoreUnavailable`` (503), because the
  token may well be valid.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bastion.clock import Clock
from bastion.crypto.jws import PublicKeys
from bastion.errors import StoreUnavailable
from bastion.gateway.settings import IssuerSettings

log = logging.getLogger("bastion.gateway.jwks")

MAX_JWKS_BYTES = 65_536
Fetch = Callable[[str, float], Awaitable[bytes]]


class JwksCache:
    def __init__(self, issuer: IssuerSettings, fetch: Fetch, clock: Clock) -> None:
        self._issuer = issuer
        self._fetch = fetch
        self._clock = clock
        self._keys: PublicKeys | None = None
        self._kids: frozenset[str] = frozenset()
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()

    async def public_keys(self, kid: str | None) -> PublicKeys:
        """The issuer's keys, parsed once per fetch."""
        now = self._clock.now()
        fresh = now - self._fetched_at < self._issuer.jwks_max_age
        known = kid is None or kid in self._kids
        if self._keys is None or not fresh or not known:
            await self._refresh()
        if self._keys is None:
            raise StoreUnavailable("jwks", f"no key set for issuer {self._issuer.name}")
        return self._keys

    async def _refresh(self) -> None:
        async with self._lock:
            now = self._clock.now()
            if now - self._attempted_at < self._issuer.jwks_min_refresh_interval:
                return  # someone refreshed (or failed to) just now; use what we have
            self._attempted_at = now
            try:
                raw = await self._fetch(self._issuer.jwks_uri, self._issuer.jwks_timeout)
                keys, kids = parse_jwks(raw)
            except (StoreUnavailable, ValueError) as exc:
                log.warning("JWKS of issuer %s unavailable: %s", self._issuer.name, exc)
                return
            self._keys, self._kids, self._fetched_at = keys, kids, now


def parse_jwks(raw: bytes) -> tuple[PublicKeys, frozenset[str]]:
    """A key set with public keys only; private members or symmetric keys are refused."""
    if len(raw) > MAX_JWKS_BYTES:
        raise ValueError("JWKS document too large")
    try:
        document: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError("JWKS is not JSON") from exc
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise ValueError("JWKS has no keys array")
    usable = [
        key
        for key in keys
        if isinstance(key, dict)
        and key.get("kty") in ("RSA", "EC", "OKP")
        and "d" not in key
        and key.get("use", "sig") == "sig"
    ]
    try:
        key_set = PublicKeys.from_jwks({"keys": usable})
    except ValueError as exc:
        raise ValueError("JWKS holds a malformed key") from exc
    return key_set, frozenset(str(k["kid"]) for k in usable if "kid" in k)
