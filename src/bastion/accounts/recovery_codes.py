"""Single-use recovery codes: look-up secrets (NIST SP 800-63B §5.1.2).

Each code is 10 characters from Crockford's base32 alphabet, 50 bits of entropy, far above
the 20 bits §5.1.2.1 requires of a rate-limited look-up secret. Being that random, a code is
stored as a keyed hash (HMAC-SHA256 under a key derived from the master key) rather than a
slow password hash: a database dump without the master key reveals nothing, and looking a
code up is one indexed equality.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COUNT = 10
LENGTH = 10
# Crockford's base32 in lower case: no i, l, o or u, so no symbol reads as another.
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"

_SYMBOLS = frozenset(ALPHABET)
# Crockford's decoding rules: letters people type for the digits they resemble.
_CONFUSIONS = str.maketrans({"o": "0", "i": "1", "l": "1", " ": None, "-": None})
# Generous room for separators and stray spaces, yet a bound on the work for any input.
_MAX_INPUT = 4 * LENGTH


def generate(count: int = COUNT) -> list[str]:
    """``count`` distinct fresh codes, in display form ``xxxxx-xxxxx``."""
    codes: list[str] = []
    # A repeat is vanishingly unlikely at 50 bits; excluding it still keeps the promise that
    # each code is a separate single-use secret.
    while len(codes) < count:
        raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        shown = f"{raw[:5]}-{raw[5:]}"
        if shown not in codes:
            codes.append(shown)
    return codes


def normalize(code: str) -> str | None:
    """The canonical 10-character form of ``code``, or None if it cannot be a code."""
    # Non-ASCII input is refused before lower-casing, since str.lower can turn a non-ASCII
    # letter into ASCII ones (the Kelvin sign into "k") and so accept look-alike spellings.
    if len(code) > _MAX_INPUT or not code.isascii():
        return None
    compact = code.lower().translate(_CONFUSIONS)
    if len(compact) != LENGTH or not _SYMBOLS.issuperset(compact):
        return None
    return compact


def digest(key: bytes, user_id: str, code: str) -> str | None:
    """HMAC-SHA256 (RFC 2104) of ``user_id|code`` in hex, or None for a malformed code.

    ``key`` is derived by the caller, ``derive_key(master_key, "recovery-codes")``. Binding
    the user id means one user's code never unlocks another account, even on a collision.
    """
    normalized = normalize(code)
    if normalized is None:
        return None
    # The code has a fixed length and no "|", so the message splits one way only whatever
    # the user id contains.
    message = f"{user_id}|{normalized}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
