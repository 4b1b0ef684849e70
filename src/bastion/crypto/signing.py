"""Signing keys as a service: the pure ``KeyRing`` plus its store, master key and clock.

Every worker holds the ring in memory and refreshes it from the store every
``refresh_interval``; because a new key is published ``publish_ahead`` before it
signs, every worker has seen it before any worker signs with it. If the database is
unreachable during a refresh, the ring in memory keeps serving (fail static): the JWKS
stays available and signing continues with keys already known.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bastion.clock import Clock
from bastion.crypto.envelope import Envelope
from bastion.crypto.jws import PublicKeys
from bastion.crypto.keyring import Algorithm, KeyRing, SigningKey
from bastion.crypto.settings import KeySettings
from bastion.errors import KeyRingError, StoreUnavailable
from bastion.store.protocols import SigningKeyStore, StoredKey

log = logging.getLogger("bastion.keys")


class SigningKeys:
    def __init__(
        self, store: SigningKeyStore, envelope: Envelope, settings: KeySettings, clock: Clock
    ) -> None:
        self._store = store
        self._envelope = envelope
        self._settings = settings
        self._clock = clock
        self._ring = KeyRing((), settings.max_token_lifetime)
        self._loaded_at: float | None = None

    @property
    def ring(self) -> KeyRing:
        return self._ring

    async def load(self) -> KeyRing:
        """Read and open every key; raises ``MasterKeyError`` if any will not open."""
        stored = await self._store.list_keys()
        self._ring = KeyRing((self._open(row) for row in stored), self._settings.max_token_lifetime)
        self._loaded_at = self._clock.now()
        return self._ring

    async def ensure_signing_key(self) -> SigningKey:
        """Load the ring and, only if it is empty, create its first key.

        A first key activates at once: nothing has been signed before it, so there is
        no verifier that could lack it. A ring that has keys but none active is an
        operator's decision and is left alone.
        """
        ring = await self.load()
        if not ring.keys:
            now = self._clock.now()
            await self._add(
                ring.plan_rotation(now, self._settings.algorithm, 0, immediate=True).new_key
            )
            ring = await self.load()
        return ring.signing_key(self._clock.now())

    async def refresh_if_stale(self) -> None:
        """Re-read the ring once per interval; concurrent callers keep the ring they have."""
        now = self._clock.now()
        if self._loaded_at is not None and now - self._loaded_at < self._settings.refresh_interval:
            return
        # Claim this refresh before awaiting, so a burst of requests makes one query.
        self._loaded_at = now
        try:
            await self.load()
        except StoreUnavailable:
            log.warning("key ring refresh failed: database unavailable; serving cached keys")
        except Exception:
            # Fail static: a row this process cannot open, or a store answering with
            # errors, must not take down the keys it already holds.
            log.exception("key ring refresh failed; serving cached keys")

    async def rotate(self, alg: Algorithm | None = None, *, immediate: bool = False) -> SigningKey:
        ring = await self.load()
        rotation = ring.plan_rotation(
            self._clock.now(),
            alg or self._settings.algorithm,
            self._settings.publish_ahead,
            immediate=immediate,
        )
        # One transaction: a crash between the two would leave the old key active for ever.
        await self._add(rotation.new_key, rotation.retirements)
        await self.load()
        return rotation.new_key

    async def retire(self, kid: str, *, unpublish: bool = False, force: bool = False) -> float:
        ring = await self.load()
        retired_at = ring.plan_retirement(kid, self._clock.now(), unpublish=unpublish, force=force)
        await self._store.set_retired({kid: retired_at})
        await self.load()
        return retired_at

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        return self._ring.jwks(self._clock.now())

    def key_set(self) -> PublicKeys:
        """The published public keys, parsed to verify with (built once per ring)."""
        return self._ring.key_set(self._clock.now())

    def sign_jwt(self, claims: dict[str, Any], *, typ: str = "JWT") -> str:
        """Sign claims with the current key. Callers set ``exp`` within max_token_lifetime."""
        now = self._clock.now()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp - now > self._settings.max_token_lifetime:
            raise KeyRingError("a signed token needs an exp within keys.max_token_lifetime")
        key = self._ring.signing_key(now)
        return key.sign(claims, typ)

    async def _add(self, key: SigningKey, retirements: Mapping[str, float] | None = None) -> None:
        sealed = self._envelope.seal(key.private_pem, key.kid.encode())
        await self._store.add_key(
            StoredKey(
                kid=key.kid,
                alg=key.alg,
                created_at=key.created_at,
                activates_at=key.activates_at,
                retired_at=key.retired_at,
                sealed_private_key=sealed,
            ),
            retirements,
        )

    def _open(self, row: StoredKey) -> SigningKey:
        if row.alg not in ("ES256", "Ed25519"):
            raise KeyRingError(f"key {row.kid} has unsupported algorithm {row.alg!r}")
        try:
            private_pem = self._envelope.open(row.sealed_private_key, row.kid.encode())
        except KeyRingError as exc:
            raise type(exc)(f"key {row.kid}: {exc}") from exc
        alg: Algorithm = "ES256" if row.alg == "ES256" else "Ed25519"
        return SigningKey(
            kid=row.kid,
            alg=alg,
            created_at=row.created_at,
            activates_at=row.activates_at,
            retired_at=row.retired_at,
            private_pem=private_pem,
        )
