"""The public key an installation registers so that what only it may read (remote
configuration) can be encrypted to it: a JWK (RFC 7517) for ECDH-ES+A256KW (RFC 7518
§4.6) on P-256, public only.

Deny by default: members other than the ones listed are refused (a private ``d``, any
other key type or curve, certificate chains), and the point must lie on the curve
(RFC 7518 §6.2.1; an invalid-curve point would leak the sender's ephemeral secret).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

ALG = "ECDH-ES+A256KW"
_ALLOWED = frozenset({"kty", "crv", "x", "y", "use", "alg", "kid", "key_ops"})
_KEY_OPS = frozenset({"deriveKey", "deriveBits"})
_B64URL = re.compile(r"[A-Za-z0-9_-]{43}")


def _coordinate(value: Any, name: str) -> int:
    if not isinstance(value, str) or len(value) != 43:
        raise ValueError(f"{name} is 32 bytes in base64url without padding")
    # The decoder skips characters outside the alphabet: check them first.
    if not _B64URL.fullmatch(value):
        raise ValueError(f"{name} is not base64url")
    return int.from_bytes(base64.urlsafe_b64decode(value + "="), "big")


def encryption_key(jwk: Any) -> dict[str, Any]:
    """The key as it is stored, or ``ValueError`` saying (client-safe) what is wrong."""
    if not isinstance(jwk, Mapping):
        raise ValueError("the key is a JSON object (a JWK)")
    if "d" in jwk:
        raise ValueError("the key holds a private member (d): send the public key only")
    unknown = sorted(set(jwk) - _ALLOWED)
    if unknown:
        raise ValueError(f"members not accepted: {', '.join(unknown)}")
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise ValueError('the key is kty "EC" on crv "P-256"')
    if jwk.get("use") != "enc":
        raise ValueError('the key is for encryption: use "enc"')
    if "alg" in jwk and jwk["alg"] != ALG:
        raise ValueError(f'alg, when present, is "{ALG}"')
    ops = jwk.get("key_ops")
    if ops is not None and (
        not isinstance(ops, list) or not ops or not all(op in _KEY_OPS for op in ops)
    ):
        raise ValueError("key_ops, when present, lists deriveKey or deriveBits")
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not 0 < len(kid) <= 128):
        raise ValueError("kid, when present, is a string of at most 128 characters")
    x, y = _coordinate(jwk.get("x"), "x"), _coordinate(jwk.get("y"), "y")
    try:
        ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except ValueError as exc:
        raise ValueError("the point is not on P-256") from exc
    return {name: jwk[name] for name in sorted(_ALLOWED) if name in jwk}
