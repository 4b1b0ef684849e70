"""One-time attestation challenges, kept in hot state.

App Attest and Play Integrity both sign a challenge the server chose, so a verdict
cannot be replayed from an earlier session. A challenge here is 32 random bytes
(base64url, no padding: 43 characters), bound to the client it was issued to, valid for
at most five minutes and consumed atomically: it is accepted exactly once.

The store key is derived from a SHA-256 hash of the challenge, so the challenge text
itself (a bearer secret until used) never appears as a key. With Redis every worker
and machine shares the same challenges. A store that cannot answer raises
``StoreUnavailable``, which is left to propagate: the caller refuses the request (fail
closed), never accepts a challenge unchecked.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass

from bastion.clock import Clock
from bastion.store.protocols import HotStore

CHALLENGE_BYTES = 32
# Apple and Google expect challenges to be short-lived.
MAX_LIFETIME = 300.0
_KEY_PREFIX = "device-challenge:"
_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def challenge_key(challenge: str) -> str:
    """The hot-state key of a challenge: a hash of it, never the challenge as written."""
    return _KEY_PREFIX + _b64url(hashlib.sha256(challenge.encode("ascii")).digest())


@dataclass(frozen=True)
class Challenge:
    value: str
    expires_at: float


class DeviceChallenges:
    def __init__(self, hot: HotStore, clock: Clock, lifetime: float = MAX_LIFETIME) -> None:
        if not 0 < lifetime <= MAX_LIFETIME:
            raise ValueError(f"lifetime must be in (0, {MAX_LIFETIME:g}] seconds")
        self.hot = hot
        self.clock = clock
        self.lifetime = lifetime

    async def issue(self, client_id: str) -> Challenge:
        """A new challenge for ``client_id``, valid for ``lifetime`` seconds.

        Raises ``StoreUnavailable`` when hot state cannot answer."""
        if not client_id:
            raise ValueError("a challenge is issued to a client")
        while True:
            value = _b64url(secrets.token_bytes(CHALLENGE_BYTES))
            expires_at = self.clock.now() + self.lifetime
            stored = await self.hot.set_if_absent(
                challenge_key(value), client_id.encode(), ttl=self.lifetime
            )
            # A collision of 256 random bits does not happen; if it did, the existing
            # challenge is left alone and another one drawn.
            if stored:
                return Challenge(value, expires_at)

    async def consume(self, client_id: str, challenge: str) -> bool:
        """True exactly once for a challenge issued to ``client_id`` and not yet
        expired; False otherwise (already used, expired, another client's, or not a
        challenge at all; the last without touching the store). Another client's
        attempt leaves the challenge in place for its own client.

        Raises ``StoreUnavailable`` when hot state cannot answer: the caller must refuse
        the request, never accept the challenge unchecked."""
        if not client_id or not isinstance(challenge, str) or not _SHAPE.fullmatch(challenge):
            return False
        return await self.hot.compare_and_delete(challenge_key(challenge), client_id.encode())
