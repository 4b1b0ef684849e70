"""App Attest attestations and assertions made the way an Apple device makes them, under
a certificate authority of the test's own ("Validating apps that connect to your
server"; WebAuthn §6.1 authenticator data, §6.5.1 attested credential data), with knobs
to break each part. Keys are made per test; nothing here is a fixed secret."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bastion.device.app_attest import AAGUIDS, NONCE_EXTENSION, Environment, app_id_hash
from tests.support.pki import ca_certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass(frozen=True)
class AttestationCA:
    """A root and an intermediate in the shape of Apple's App Attestation CAs."""

    root: x509.Certificate
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey

    @classmethod
    def make(cls, at: datetime) -> AttestationCA:
        root_key = ec.generate_private_key(ec.SECP384R1())
        intermediate_key = ec.generate_private_key(ec.SECP384R1())
        before, after = at - timedelta(days=365), at + timedelta(days=365)
        root = ca_certificate(
            _name("Test App Attestation Root"),
            root_key,
            signer=root_key,
            not_before=before,
            not_after=after,
        )
        intermediate = ca_certificate(
            _name("Test App Attestation CA"),
            intermediate_key,
            issuer=root,
            signer=root_key,
            not_before=before,
            not_after=after,
        )
        return cls(root, intermediate, intermediate_key)

    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)


def key_identifier(key: ec.EllipticCurvePrivateKey) -> bytes:
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return hashlib.sha256(point).digest()


@dataclass
class AppAttestDevice:
    """One App Attest key of one installation of the app ``app_id`` (team.bundle)."""

    ca: AttestationCA
    app_id: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    client_data: bytes = b"server-issued challenge"
    environment: Environment = "production"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    counter: int = 0
    credential_id: bytes | None = None
    nonce_extension: bytes | None = None
    with_nonce: bool = True

    @property
    def key_id(self) -> bytes:
        return key_identifier(self.key)

    @property
    def key_id_text(self) -> str:
        """The key id as the device-trust API takes it: base64url, no padding."""
        return base64.urlsafe_b64encode(self.key_id).rstrip(b"=").decode()

    def _rp_id_hash(self, app_id: str | None = None) -> bytes:
        return app_id_hash(*(app_id or self.app_id).split(".", 1))

    def auth_data(self) -> bytes:
        credential_id = self.key_id if self.credential_id is None else self.credential_id
        return (
            self._rp_id_hash()
            + b"\x40"
            + self.counter.to_bytes(4, "big")
            + AAGUIDS[self.environment]
            + len(credential_id).to_bytes(2, "big")
            + credential_id
            + cbor2.dumps({1: 2, 3: -7})
        )

    def leaf(self, auth_data: bytes, client_data: bytes) -> x509.Certificate:
        nonce = hashlib.sha256(auth_data + hashlib.sha256(client_data).digest()).digest()
        value = self.nonce_extension or bytes.fromhex("3024a1220420") + nonce
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(self.key_id.hex()))
            .issuer_name(self.ca.intermediate.subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.at - timedelta(days=1))
            .not_valid_after(self.at + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if self.with_nonce:
            extension = x509.UnrecognizedExtension(NONCE_EXTENSION, value)
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(self.ca.intermediate_key, hashes.SHA256())

    def attestation_object(
        self, auth_data: bytes | None = None, *, client_data: bytes | None = None
    ) -> bytes:
        auth_data = self.auth_data() if auth_data is None else auth_data
        leaf = self.leaf(auth_data, self.client_data if client_data is None else client_data)
        x5c = [
            leaf.public_bytes(serialization.Encoding.DER),
            self.ca.intermediate.public_bytes(serialization.Encoding.DER),
        ]
        statement = {"x5c": x5c, "receipt": b"receipt"}
        encoded: bytes = cbor2.dumps(
            {"fmt": "apple-appattest", "attStmt": statement, "authData": auth_data}
        )
        return encoded

    def assertion(self, counter: int, client_data: bytes, *, app_id: str | None = None) -> bytes:
        authenticator_data = self._rp_id_hash(app_id) + b"\x40" + counter.to_bytes(4, "big")
        nonce = hashlib.sha256(authenticator_data + hashlib.sha256(client_data).digest()).digest()
        signature = self.key.sign(nonce, ec.ECDSA(hashes.SHA256()))
        encoded: bytes = cbor2.dumps(
            {"signature": signature, "authenticatorData": authenticator_data}
        )
        return encoded
