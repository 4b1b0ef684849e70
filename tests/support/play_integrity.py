"""Play Integrity tokens made the way Google makes them, with the test's own keys.

A classic token is a compact JWS (ES256) of the verdict inside a compact JWE (A256KW,
A256GCM) ("Make a classic API request", "manage response encryption yourself"); the
verdict's fields are those of "Integrity verdicts"
(https://developer.android.com/google/play/integrity/verdicts). ``ConsoleKeys`` holds
the two keys the Play Console shows and writes them as it gives them: base64 of the raw
AES key, base64 of the DER SubjectPublicKeyInfo of the verification key.
``FakeDecoder`` stands for Google's ``decodeIntegrityToken`` (Standard requests).
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwe, jws
from joserfc.jwe import JWERegistry
from joserfc.jwk import ECKey, OctKey
from joserfc.jws import JWSRegistry

PACKAGE = "com.example.app"
# A signing certificate's SHA-256 as Play reports it (base64url, no padding).
CERT_DIGEST = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()


def verdict(
    *,
    now: float,
    nonce: str | None = None,
    request_hash: str | None = None,
    package: str = PACKAGE,
    digest: str = CERT_DIGEST,
    labels: tuple[str, ...] = ("MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY"),
    recognition: str = "PLAY_RECOGNIZED",
    age: float = 5.0,
) -> dict[str, Any]:
    """A verdict in the documented shape, made ``age`` seconds before ``now``, bound to a
    classic ``nonce`` or a standard ``request_hash``."""
    details: dict[str, Any] = {
        "requestPackageName": package,
        "timestampMillis": str(int((now - age) * 1000)),
    }
    if nonce is not None:
        details["nonce"] = nonce
    if request_hash is not None:
        details["requestHash"] = request_hash
    return {
        "requestDetails": details,
        "appIntegrity": {
            "appRecognitionVerdict": recognition,
            "packageName": package,
            "certificateSha256Digest": [digest],
            "versionCode": "42",
        },
        "deviceIntegrity": {"deviceRecognitionVerdict": list(labels)},
        "accountDetails": {"appLicensingVerdict": "LICENSED"},
        "environmentDetails": {"playProtectVerdict": "NO_ISSUES"},
    }


@dataclass
class ConsoleKeys:
    """The Play Console's response-encryption keys of one app."""

    decryption_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    signing_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def write(self, directory: Path) -> tuple[Path, Path]:
        decryption, verification = directory / "pi-decryption.txt", directory / "pi-verify.txt"
        decryption.write_text(base64.b64encode(self.decryption_key).decode() + "\n")
        der = self.signing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        verification.write_text(base64.b64encode(der).decode() + "\n")
        return decryption, verification

    def token(self, payload: dict[str, Any]) -> str:
        signed = jws.serialize_compact(
            {"alg": "ES256"},
            json.dumps(payload).encode(),
            ECKey.import_key(self.signing_key),
            registry=JWSRegistry(algorithms=["ES256"]),
        )
        return jwe.encrypt_compact(
            {"alg": "A256KW", "enc": "A256GCM"},
            signed,
            OctKey.import_key(self.decryption_key),
            registry=JWERegistry(algorithms=["A256KW", "A256GCM"]),
        )


class DecoderDown(ConnectionError):
    """What a decoder's HTTP client raises when Google cannot be reached."""


@dataclass
class FakeDecoder:
    """Google's ``decodeIntegrityToken``: the verdict of each token it knows; a token it
    does not know is refused as Google refuses it (here: an ``IntegrityError``), and
    while ``down`` every call fails as an unreachable API does."""

    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    down: bool = False
    calls: list[tuple[str, str]] = field(default_factory=list)

    def issue(self, payload: dict[str, Any]) -> str:
        token = secrets.token_urlsafe(32)
        self.verdicts[token] = payload
        return token

    async def decode(self, package_name: str, token: str) -> dict[str, Any]:
        from bastion.errors import IntegrityError

        self.calls.append((package_name, token))
        if self.down:
            raise DecoderDown("playintegrity.googleapis.com unreachable")
        if token not in self.verdicts:
            raise IntegrityError("malformed", "Google does not know this token")
        return self.verdicts[token]
