"""What a genuine app installation sends to prove itself, made here with the test's own
keys: App Attest attestations under a test CA standing in for Apple's root, and Play
Integrity classic tokens under test Play Console keys.

- App Attest: Apple's "Validating apps that connect to your server" layout (as in
  tests/device/test_app_attest_synthetic.py), for any App ID, client data and time.
- Play Integrity: a compact JWE (A256KW, A256GCM) around a compact JWS (ES256) of the
  verdict, as "Make a classic API request" describes it when the app manages response
  encryption, with the verdict fields of "Integrity verdicts".
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc import jwe, jws
from joserfc.jwe import JWERegistry
from joserfc.jwk import ECKey, OctKey
from joserfc.jws import JWSRegistry

from bastion.device.app_attest import AAGUIDS, NONCE_EXTENSION, app_id_hash
from tests.support.pki import ca_certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class AppAttestCA:
    """A root and an intermediate standing in for Apple's App Attestation CAs, valid
    for a year either side of ``now``."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    root_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP384R1())
    )
    intermediate_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP384R1())
    )

    def __post_init__(self) -> None:
        span = {
            "not_before": self.now - timedelta(days=365),
            "not_after": self.now + timedelta(days=365),
        }
        self.root = ca_certificate(
            _name("Test App Attestation Root"),
            self.root_key,
            issuer=None,
            signer=self.root_key,
            **span,
        )
        self.intermediate = ca_certificate(
            _name("Test App Attestation CA"),
            self.intermediate_key,
            issuer=self.root,
            signer=self.root_key,
            **span,
        )

    def write_root(self, path: Path) -> Path:
        path.write_bytes(self.root.public_bytes(serialization.Encoding.PEM))
        return path


@dataclass
class AppAttestKey:
    """One App Attest key of one installation of ``app_id`` (team.bundle)."""

    ca: AppAttestCA
    app_id: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @property
    def key_id(self) -> bytes:
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return hashlib.sha256(point).digest()

    def attestation_object(self, client_data: bytes) -> bytes:
        """``attestKey``'s answer over ``SHA-256(client_data)``."""
        team, bundle = self.app_id.split(".", 1)
        auth_data = (
            app_id_hash(team, bundle)
            + b"\x40"
            + (0).to_bytes(4, "big")
            + AAGUIDS["production"]
            + len(self.key_id).to_bytes(2, "big")
            + self.key_id
            + cbor2.dumps({1: 2, 3: -7})
        )
        nonce = hashlib.sha256(auth_data + hashlib.sha256(client_data).digest()).digest()
        leaf = (
            x509.CertificateBuilder()
            .subject_name(_name(self.key_id.hex()))
            .issuer_name(self.ca.intermediate.subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.ca.now - timedelta(days=1))
            .not_valid_after(self.ca.now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.UnrecognizedExtension(NONCE_EXTENSION, bytes.fromhex("3024a1220420") + nonce),
                critical=False,
            )
            .sign(self.ca.intermediate_key, hashes.SHA256())
        )
        x5c = [
            leaf.public_bytes(serialization.Encoding.DER),
            self.ca.intermediate.public_bytes(serialization.Encoding.DER),
        ]
        encoded: bytes = cbor2.dumps(
            {
                "fmt": "apple-appattest",
                "attStmt": {"x5c": x5c, "receipt": b"receipt"},
                "authData": auth_data,
            }
        )
        return encoded


@dataclass
class PlayConsoleKeys:
    """The two keys the Play Console gives for classic requests whose response
    encryption the app's team manages, and the files Bastion reads them from."""

    decryption_key: bytes = field(default_factory=lambda: os.urandom(32))
    signing_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def write(self, directory: Path) -> tuple[Path, Path]:
        """The files as downloaded: base64 of the AES key, base64 of the DER public key."""
        decryption = directory / "play-decryption.key"
        verification = directory / "play-verification.key"
        decryption.write_text(base64.b64encode(self.decryption_key).decode())
        der = self.signing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        verification.write_text(base64.b64encode(der).decode())
        return decryption, verification

    def token(self, verdict: dict[str, Any]) -> str:
        signed = jws.serialize_compact(
            {"alg": "ES256"},
            json.dumps(verdict).encode(),
            ECKey.import_key(self.signing_key),
            registry=JWSRegistry(algorithms=["ES256"]),
        )
        return jwe.encrypt_compact(
            {"alg": "A256KW", "enc": "A256GCM"},
            signed,
            OctKey.import_key(self.decryption_key),
            registry=JWERegistry(algorithms=["A256KW", "A256GCM"]),
        )


def classic_verdict(
    package: str, certificate_digest: str, client_data: bytes, now: float
) -> dict[str, Any]:
    """A classic request's verdict bound to ``client_data``: the app passed
    base64url(SHA-256(client_data)) as the nonce, and Google echoes it."""
    return {
        "requestDetails": {
            "requestPackageName": package,
            "nonce": b64url(hashlib.sha256(client_data).digest()),
            "timestampMillis": str(int(now * 1000) - 2_000),
        },
        "appIntegrity": {
            "appRecognitionVerdict": "PLAY_RECOGNIZED",
            "packageName": package,
            "certificateSha256Digest": [certificate_digest],
            "versionCode": "42",
        },
        "deviceIntegrity": {"deviceRecognitionVerdict": ["MEETS_DEVICE_INTEGRITY"]},
        "accountDetails": {"appLicensingVerdict": "LICENSED"},
    }
