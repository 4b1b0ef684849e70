"""A DPoP client's side for tests: a device key and the proofs it signs (RFC 9449 §4.2).

Keys are made per test; nothing here is a fixed secret.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from bastion.crypto.jws import b64url
from bastion.oauth.dpop import access_token_hash, thumbprint


def _int(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass
class DeviceKey:
    """A device key pair. ``alg`` is the proof algorithm: ES256, EdDSA, RS256 or PS256."""

    alg: str = "ES256"
    rsa_bits: int = 2048
    private: Any = field(init=False)

    def __post_init__(self) -> None:
        if self.alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
        elif self.alg in ("EdDSA", "Ed25519"):
            self.private = ed25519.Ed25519PrivateKey.generate()
        elif self.alg[:2] in ("RS", "PS"):
            self.private = rsa.generate_private_key(65537, self.rsa_bits)
        else:
            raise ValueError(self.alg)

    def jwk(self) -> dict[str, str]:
        public = self.private.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            numbers = public.public_numbers()
            return {
                "kty": "EC",
                "crv": "P-256",
                "x": b64url(numbers.x.to_bytes(32, "big")),
                "y": b64url(numbers.y.to_bytes(32, "big")),
            }
        if isinstance(public, ed25519.Ed25519PublicKey):
            from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

            raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
            return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
        numbers = public.public_numbers()
        return {"kty": "RSA", "n": _int(numbers.n), "e": _int(numbers.e)}

    @property
    def jkt(self) -> str:
        return thumbprint(self.jwk())

    def sign(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        signing_input = f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(claims))}"
        data = signing_input.encode("ascii")
        alg = header.get("alg", self.alg)
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        elif isinstance(self.private, ed25519.Ed25519PrivateKey):
            signature = self.private.sign(data)
        elif alg.startswith("PS"):
            signature = self.private.sign(
                data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()
            )
        else:
            signature = self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    def proof(
        self,
        htm: str,
        htu: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        iat: float | None = None,
        jti: str | None = None,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """A proof for one request; ``header`` and ``claims`` override or add members
        (a value of None removes one), to build the hostile ones."""
        head: dict[str, Any] = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk()}
        body: dict[str, Any] = {
            "jti": jti or secrets.token_urlsafe(16),
            "htm": htm,
            "htu": htu,
            "iat": int(time.time() if iat is None else iat),
        }
        if access_token is not None:
            body["ath"] = access_token_hash(access_token)
        if nonce is not None:
            body["nonce"] = nonce
        for target, changes in ((head, header), (body, claims)):
            for name, value in (changes or {}).items():
                if value is None:
                    target.pop(name, None)
                else:
                    target[name] = value
        return self.sign(head, body)
