"""Refresh token families: rotation on every use, reuse detection, a grace window.

RFC 9700 §4.14.2: a public client's refresh token is rotated on every use, and presenting
one that was already rotated out means it leaked, so the whole family is revoked.

A family is a chain of tokens ``T0, T1, ...``; the store keeps only the family row and the
generation of its newest token. A token is ``rt1.<family>.<generation>.<mac>`` where the
MAC key is derived from the master key and a random per-family salt, so:

* nothing that can be used as a token is stored: a database dump yields no token, which
  is stronger than storing a hash (and the token's SHA-256 is what audit logs refer to);
* a client that lost the response to a refresh and retries within the grace window gets
  the *same* successor back, computed again rather than kept in plaintext; the chain never
  forks.

The grace window is off by default (as in Ory Hydra): inside it, a thief racing the app
with the token just rotated out would win silently. When an operator turns it on, it
forgives only a retry from the instance that made the rotation (``Instance``).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from bastion.errors import OAuthError

PREFIX = "rt1"
_TOKEN = re.compile(r"rt1\.([A-Za-z0-9_-]{16,64})\.(\d{1,9})\.([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class Family:
    family_id: str
    salt: bytes
    client_id: str
    subject: str
    scope: tuple[str, ...]
    resources: tuple[str, ...]
    generation: int
    rotated_at: float
    created_at: float
    last_used_at: float
    expires_at: float
    revoked_at: float | None = None
    # How the user authenticated, carried into every access token of the family.
    session_id: str = ""
    auth_time: float = 0.0
    acr: str = ""
    amr: tuple[str, ...] = ()
    # Fingerprint of the instance that made the latest rotation; "" when unknown.
    rotated_by: str = ""
    # RFC 9449 §5: a public client's family is bound to the DPoP key it began with;
    # every refresh must prove that key. None: not bound.
    dpop_jkt: str | None = None


@dataclass(frozen=True)
class Instance:
    """The app instance behind a token request, as far as the token endpoint can tell.

    Parts are named values (the source address, the User-Agent) that must all match for a
    retry to count as the same instance; a DPoP key thumbprint becomes one more part.
    """

    parts: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, **parts: str) -> Instance:
        return cls(tuple(sorted(parts.items())))

    def fingerprint(self, salt: bytes) -> str:
        """Keyed with the family's salt: what is stored names no address and links no
        two families."""
        encoded = json.dumps(self.parts, separators=(",", ":")).encode()
        return hmac.new(salt, encoded, hashlib.sha256).hexdigest()


class Outcome(enum.Enum):
    ROTATE = "rotate"  # the newest token: issue the next one
    REPLAY = "replay"  # the previous token, inside the grace window from the same instance
    REUSE = "reuse"  # an older token: it leaked; revoke the family
    EXPIRED = "expired"  # idle or absolute lifetime passed
    REVOKED = "revoked"  # the family was revoked earlier


def mint(key: bytes, family: Family, generation: int) -> str:
    mac = hmac.new(key, _message(family, generation), hashlib.sha256).digest()
    encoded = base64.urlsafe_b64encode(mac).decode().rstrip("=")
    return f"{PREFIX}.{family.family_id}.{generation}.{encoded}"


def parse(token: str) -> tuple[str, int] | None:
    """The family id and generation a token claims; None if it is not one of ours."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def authentic(key: bytes, family: Family, token: str) -> bool:
    parsed = parse(token)
    if parsed is None or parsed[0] != family.family_id:
        return False
    return hmac.compare_digest(mint(key, family, parsed[1]), token)


def decide(
    family: Family,
    generation: int,
    now: float,
    *,
    idle_lifetime: float,
    grace: float,
    instance: Instance | None = None,
) -> Outcome:
    """What presenting the family's token of ``generation`` at ``now`` means.

    ``instance`` is who presents it; without one, nothing is forgiven as a retry.
    """
    if family.revoked_at is not None:
        return Outcome.REVOKED
    if now >= family.expires_at or now - family.last_used_at >= idle_lifetime:
        return Outcome.EXPIRED
    if generation == family.generation:
        return Outcome.ROTATE
    if generation == family.generation - 1 and _forgiven(family, now, grace, instance):
        return Outcome.REPLAY
    return Outcome.REUSE


def _forgiven(family: Family, now: float, grace: float, instance: Instance | None) -> bool:
    """RFC 9700 §4.14.2: a retry of the previous token, inside an opted-in grace window,
    from the instance that made the rotation. A grace of 0 forgives nothing, even at the
    very instant of the rotation."""
    if grace <= 0 or now - family.rotated_at > grace or instance is None:
        return False
    return bool(family.rotated_by) and hmac.compare_digest(
        instance.fingerprint(family.salt), family.rotated_by
    )


def narrow_scope(granted: tuple[str, ...], requested: tuple[str, ...]) -> tuple[str, ...]:
    """RFC 6749 §6: a refresh may ask for less, never more. Empty means unchanged."""
    if not requested:
        return granted
    if not set(requested) <= set(granted):
        raise OAuthError("invalid_scope", "a refresh cannot add scopes to the original grant")
    return requested


def _message(family: Family, generation: int) -> bytes:
    return b"|".join(
        [PREFIX.encode(), family.family_id.encode(), str(generation).encode(), family.salt]
    )
