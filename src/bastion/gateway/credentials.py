"""What an upstream receives instead of the app's token.

The app's token never leaves the gateway. Per upstream, one of:

- ``token_exchange``: an internal access token minted as RFC 8693 token exchange would
  (§2.2): audience = the upstream, scopes narrowed to what the route needs, ``act``
  naming the app's client (§4.1), lifetime at most 60 s and never past the app token's
  own expiry. It is cached per subject, app, upstream and scope set, and renewed by one
  request ahead of expiry, so one is minted per minute per user rather than per request.
- ``static`` or ``client_credentials``: the upstream's own credential
  (``service_credentials``).
- ``none``: nothing (an upstream that relies on mTLS or the network alone).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from bastion.authserver.access import Authentication
from bastion.clock import Clock
from bastion.errors import Unauthenticated
from bastion.gateway.caller import BASTION, Caller, principal
from bastion.gateway.renewal import Renewing, Timing
from bastion.gateway.settings import UpstreamSettings

# Use a cached internal token only while it has this long to live, so it cannot expire
# between leaving the gateway and reaching the upstream; renew it when it has less than
# RENEW_AHEAD left (both scaled down for shorter lifetimes, see renewal.Timing).
MIN_REMAINING = 10.0
RENEW_AHEAD = 20.0
MAX_CACHED = 10_000

Mint = Callable[..., Awaitable[tuple[str, dict[str, Any]]]]


class InternalTokens:
    """Internal tokens per (user, sign-in, app, upstream, scopes), minted once per key and
    renewed ahead of expiry (``renewal``), never outliving the app's own token."""

    def __init__(self, mint: Mint, gateway_client_id: str, clock: Clock) -> None:
        self._mint = mint
        self._client_id = gateway_client_id
        self._clock = clock
        self._tokens = Renewing(clock, MAX_CACHED)

    def cached(
        self, caller: Caller, upstream: UpstreamSettings, scopes: tuple[str, ...]
    ) -> str | None:
        """The token ``token_for`` would give at once, with nothing to mint, renew or wait
        for; else None (then ``token_for``). The hot path: no coroutine, no closure."""
        lifetime = upstream.credential.lifetime
        return self._tokens.fresh(self._key(caller, upstream, scopes), _timing(lifetime))

    async def token_for(
        self, caller: Caller, upstream: UpstreamSettings, scopes: tuple[str, ...]
    ) -> str:
        lifetime = upstream.credential.lifetime
        key = self._key(caller, upstream, scopes)
        who = _who(caller)

        async def mint() -> tuple[str, float]:
            left = min(lifetime, caller.expires_at - self._clock.now())
            if left < 1:
                # Within the clock-skew allowance past its exp: valid for Bastion, but an
                # internal token must not outlive it.
                raise Unauthenticated("The access token has expired.")
            app = caller.client_id or caller.issuer
            act: dict[str, Any] = {"sub": app, "client_id": app}
            if caller.issuer != BASTION:
                act["iss"] = caller.issuer
            token, minted = await self._mint(
                client_id=self._client_id,
                who=who,
                scope=list(scopes),
                audience=[upstream.token_audience],
                lifetime=left,
                act=act,
            )
            return token, float(minted["exp"])

        return await self._tokens.get(key, mint, _timing(lifetime))

    def _key(self, caller: Caller, upstream: UpstreamSettings, scopes: tuple[str, ...]) -> Hashable:
        # How the user signed in is part of the key: a password-level token must never be
        # handed an internal token minted for an earlier MFA sign-in. Built once per
        # verified token, with its hash (a dataclass's hash is Python code).
        slot = ("internal", upstream.name, scopes)
        key: Key | None = caller.memo.get(slot)
        if key is None:
            parts = (caller.issuer, _who(caller), caller.client_id, upstream.name, scopes)
            key = caller.memo[slot] = Key(parts)
        if self._clock.now() + upstream.credential.lifetime > caller.expires_at:
            # In the app token's last minute, a shared token could outlive it: these are
            # minted for app tokens of this expiry alone, with that expiry as their limit.
            return Key((*key.parts, caller.expires_at))
        return key


class Key:
    """A cache key of several parts whose hash is computed once (the key is looked up on
    every request); equal to another key of equal parts."""

    __slots__ = ("_hash", "parts")

    def __init__(self, parts: tuple[Hashable, ...]) -> None:
        self.parts = parts
        self._hash = hash(parts)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and self.parts == other.parts


@functools.lru_cache(maxsize=64)
def _timing(lifetime: float) -> Timing:
    return Timing.for_lifetime(lifetime, MIN_REMAINING, RENEW_AHEAD)


def _who(caller: Caller) -> Authentication:
    memo = caller.memo
    who: Authentication | None = memo.get("who")
    if who is None:
        who = memo["who"] = _authentication(caller)
    return who


def _authentication(caller: Caller) -> Authentication:
    """The user as internal tokens name them. Levels (acr, amr, auth_time) are Bastion's
    and are carried only from Bastion's own tokens: another issuer could claim any."""
    if caller.issuer != BASTION:
        return Authentication(principal(caller, caller.subject))
    claims = caller.claims
    amr = claims.get("amr")
    acr = claims.get("acr")
    return Authentication(
        caller.subject,
        _number(claims.get("auth_time")),
        acr if isinstance(acr, str) else None,
        tuple(a for a in amr if isinstance(a, str)) if isinstance(amr, list) else (),
    )


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def narrowed_scopes(route_scopes: tuple[str, ...], caller: Caller) -> tuple[str, ...]:
    """The scopes an internal token carries: what the route needs and the caller holds."""
    key = ("scopes", route_scopes)
    narrowed: tuple[str, ...] | None = caller.memo.get(key)
    if narrowed is None:
        narrowed = caller.memo[key] = tuple(sorted(set(route_scopes) & caller.scopes))
    return narrowed
