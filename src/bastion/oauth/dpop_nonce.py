"""Server-provided DPoP nonces (RFC 9449 §8 at the token endpoint, §9 at resources).

A nonce limits how long a proof stays usable by the server's clock, not the device's:
the app must first fetch one, so a proof made ahead of time (on a device whose clock
was set forward, or by malware that signs a batch) is refused. Nothing is stored: a
nonce is an HMAC of a time slot under a key derived from the master key, so every
process (and every machine sharing the master key) makes and accepts the same ones.
The current slot's nonce is handed out; the previous and next slots' are accepted too,
so a nonce lives between one and two ``lifetime``s and a clock a little ahead on
another machine does not refuse it.
"""

from __future__ import annotations

import hashlib
import hmac

from bastion.crypto.jws import b64url

# 24 bytes of HMAC: 32 base64url characters, all within §8.1's NQCHAR grammar.
_NONCE_BYTES = 24


class DpopNonces:
    def __init__(self, secret: bytes, lifetime: float) -> None:
        if lifetime <= 0:
            raise ValueError("the nonce lifetime must be positive")
        self._secret = secret
        self._lifetime = lifetime

    def _for_slot(self, slot: int) -> str:
        mac = hmac.new(self._secret, slot.to_bytes(8, "big", signed=True), hashlib.sha256)
        return b64url(mac.digest()[:_NONCE_BYTES])

    def current(self, now: float) -> str:
        """The nonce to send in ``DPoP-Nonce`` now."""
        return self._for_slot(int(now // self._lifetime))

    def accepts(self, nonce: str | None, now: float) -> bool:
        """Whether ``nonce`` (a proof's, None when it has none) is fresh."""
        if nonce is None or len(nonce) > 64:
            return False
        slot = int(now // self._lifetime)
        given = nonce.encode("ascii", "replace")
        # Every candidate is compared, in constant time, so timing says nothing of which.
        matched = False
        for candidate in (slot - 1, slot, slot + 1):
            matched |= hmac.compare_digest(given, self._for_slot(candidate).encode("ascii"))
        return matched
