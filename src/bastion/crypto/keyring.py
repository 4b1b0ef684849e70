"""The signing key ring: which key signs now, which keys are published (pure, no I/O).

A key's life, with times stored rather than states so every process agrees::

    created ──▶ next ──(activates_at)──▶ active ──(retired_at)──▶ retired ──▶ expired
                published, not signing     signs       published, not signing   gone

* A new key is published ``publish_ahead`` before it signs, so verifiers that cache
  the JWKS and every worker that refreshes the ring see it first.
* When a successor activates, the previous key retires at that instant.
* A retired key stays published for ``max_token_lifetime`` after it stopped signing,
  so every token it signed can still be verified until it expires.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from joserfc.jwk import ECKey, OKPKey

from bastion.crypto.jws import PublicKeys, header_segment, sign_compact
from bastion.errors import KeyNotFound, KeyRingError

Algorithm = Literal["ES256", "Ed25519"]
JoseKey = ECKey | OKPKey


class KeyState(enum.StrEnum):
    NEXT = "next"
    ACTIVE = "active"
    RETIRED = "retired"
    EXPIRED = "expired"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: Algorithm
    created_at: float
    activates_at: float
    retired_at: float | None
    private_pem: bytes = field(repr=False)

    @functools.cached_property
    def _jose_key(self) -> JoseKey:
        # Parsing the PEM costs as much as signing; a key is parsed once per process.
        if self.alg == "ES256":
            return ECKey.import_key(self.private_pem)
        return OKPKey.import_key(self.private_pem)

    def jose_key(self) -> JoseKey:
        return self._jose_key

    @functools.cached_property
    def _private_key(self) -> Any:
        return self._jose_key.private_key

    @functools.cached_property
    def _headers(self) -> dict[str, str]:
        return {}

    def sign(self, claims: Mapping[str, Any], typ: str) -> str:
        """A compact JWS of ``claims`` with header ``{"typ", "alg", "kid"}``: joserfc's
        output, made directly (``crypto.jws.sign_compact``)."""
        header = self._headers.get(typ)
        if header is None:
            header = self._headers[typ] = header_segment(self.alg, self.kid, typ)
        return sign_compact(header, claims, self._private_key, self.alg)

    def public_jwk(self) -> dict[str, Any]:
        """The public half only, as RFC 7517 JWK members."""
        jwk = dict(self.jose_key().as_dict(private=False))
        jwk.pop("d", None)  # never rely on a library default for the one field that matters
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def state(self, now: float, max_token_lifetime: float) -> KeyState:
        if self.retired_at is not None and now >= self.retired_at + max_token_lifetime:
            return KeyState.EXPIRED
        if self.retired_at is not None and now >= self.retired_at:
            return KeyState.RETIRED
        if now < self.activates_at:
            return KeyState.NEXT
        return KeyState.ACTIVE


def generate_key(alg: Algorithm, now: float, activates_at: float) -> SigningKey:
    """A fresh key; its id is the RFC 7638 thumbprint of the public key."""
    jose_key: JoseKey = (
        ECKey.generate_key("P-256") if alg == "ES256" else OKPKey.generate_key("Ed25519")
    )
    return SigningKey(
        kid=jose_key.thumbprint(),
        alg=alg,
        created_at=now,
        activates_at=activates_at,
        retired_at=None,
        private_pem=jose_key.as_pem(private=True),
    )


@dataclass(frozen=True)
class Rotation:
    """What a rotation changes: one new key, and the retirement of the keys it replaces."""

    new_key: SigningKey
    retirements: Mapping[str, float]


class KeyRing:
    """An immutable view of the keys at hand; decisions take ``now``."""

    def __init__(self, keys: Iterable[SigningKey], max_token_lifetime: float) -> None:
        self.keys: tuple[SigningKey, ...] = tuple(sorted(keys, key=lambda k: k.activates_at))
        self.max_token_lifetime = max_token_lifetime
        self._key_sets: dict[tuple[str, ...], PublicKeys] = {}

    def state(self, key: SigningKey, now: float) -> KeyState:
        return key.state(now, self.max_token_lifetime)

    def get(self, kid: str) -> SigningKey:
        for key in self.keys:
            if key.kid == kid:
                return key
        raise KeyNotFound(f"no signing key with id {kid!r}")

    def signing_kid(self, now: float) -> str | None:
        try:
            return self.signing_key(now).kid
        except KeyRingError:
            return None

    def signing_key(self, now: float) -> SigningKey:
        """The most recently activated key that is active now."""
        active = [k for k in self.keys if self.state(k, now) is KeyState.ACTIVE]
        if not active:
            raise KeyRingError("no active signing key: run `bastion keys rotate --immediate`")
        return max(active, key=lambda k: (k.activates_at, k.created_at))

    def published(self, now: float) -> list[SigningKey]:
        return [k for k in self.keys if self.state(k, now) is not KeyState.EXPIRED]

    def jwks(self, now: float) -> dict[str, list[dict[str, Any]]]:
        return {"keys": [k.public_jwk() for k in self.published(now)]}

    def key_set(self, now: float) -> PublicKeys:
        """The published public keys, ready to verify with: importing them costs more
        than a verification, so each set is built once per ring."""
        published = self.published(now)
        kids = tuple(k.kid for k in published)
        found = self._key_sets.get(kids)
        if found is None:
            found = PublicKeys.from_jwks({"keys": [k.public_jwk() for k in published]})
            self._key_sets = {kids: found}
        return found

    def plan_rotation(
        self, now: float, alg: Algorithm, publish_ahead: float, *, immediate: bool = False
    ) -> Rotation:
        """A new key that signs after ``publish_ahead`` (or now, in an emergency).

        Keys that would still be active when it activates retire at that instant; a key
        that was waiting its turn (``next``) is superseded and retires unused.
        """
        # With no active key nothing signs, so waiting would only prolong the outage.
        has_signer = any(self.state(k, now) is KeyState.ACTIVE for k in self.keys)
        activates_at = now if immediate or not has_signer else now + publish_ahead
        new_key = generate_key(alg, now, activates_at)
        retirements = {
            k.kid: activates_at if self.state(k, now) is KeyState.ACTIVE else now
            for k in self.keys
            if self.state(k, now) in (KeyState.ACTIVE, KeyState.NEXT)
        }
        return Rotation(new_key, retirements)

    def plan_retirement(self, kid: str, now: float, *, unpublish: bool, force: bool) -> float:
        """The ``retired_at`` to store for ``kid``.

        Retiring the key that signs now would leave the ring unable to sign, so it needs
        ``force``. ``unpublish`` is for a compromised key: it is dropped from the JWKS at
        once, so tokens it signed stop verifying.
        """
        key = self.get(kid)
        state = self.state(key, now)
        if state is KeyState.EXPIRED and not unpublish:
            raise KeyRingError(f"key {kid} has already expired")
        if not force and state is KeyState.ACTIVE and self._only_signer(key, now):
            raise KeyRingError(
                f"key {kid} is the only active signing key: rotate first, or pass --force"
            )
        return now - self.max_token_lifetime if unpublish else now

    def _only_signer(self, key: SigningKey, now: float) -> bool:
        others = [
            k for k in self.keys if k.kid != key.kid and self.state(k, now) is KeyState.ACTIVE
        ]
        return not others

    def with_changes(
        self, new_keys: Iterable[SigningKey], retirements: Mapping[str, float]
    ) -> KeyRing:
        keys = [
            replace(k, retired_at=retirements[k.kid]) if k.kid in retirements else k
            for k in self.keys
        ]
        return KeyRing([*keys, *new_keys], self.max_token_lifetime)
