"""App Attest checks that no published vector isolates, on attestations made here under a
CA of the test's own: the real vectors cannot be changed without breaking their nonce or
signature first. The layout is Apple's ("Validating apps that connect to your server")
and WebAuthn's (§6.1 authenticator data, §6.5.1 attested credential data)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bastion.device.app_attest import (
    AAGUIDS,
    NONCE_EXTENSION,
    AttestationError,
    app_id_hash,
    verify_assertion,
    verify_attestation,
)
from tests.support.pki import ca_certificate

NOW = datetime(2026, 1, 1, tzinfo=UTC)
APP_ID = "ABCDE12345.com.example.app"
CLIENT_DATA = b"server-issued challenge"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    signer: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    return ca_certificate(
        _name(name),
        key,
        issuer=issuer,
        signer=signer,
        not_before=NOW - timedelta(days=365),
        not_after=NOW + timedelta(days=365),
    )


ROOT_KEY = ec.generate_private_key(ec.SECP384R1())
ROOT = _ca("Test App Attestation Root", ROOT_KEY, None, ROOT_KEY)
INTERMEDIATE_KEY = ec.generate_private_key(ec.SECP384R1())
INTERMEDIATE = _ca("Test App Attestation CA", INTERMEDIATE_KEY, ROOT, ROOT_KEY)


def _key_id(key: ec.EllipticCurvePrivateKey) -> bytes:
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return hashlib.sha256(point).digest()


@dataclass
class Device:
    """One attestation as an App Attest device would make it, with knobs to break it."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    counter: int = 0
    credential_id: bytes | None = None
    nonce_extension: bytes | None = None
    with_nonce: bool = True

    @property
    def key_id(self) -> bytes:
        return _key_id(self.key)

    def auth_data(self) -> bytes:
        credential_id = self.key_id if self.credential_id is None else self.credential_id
        return (
            app_id_hash(*APP_ID.split(".", 1))
            + b"\x40"
            + self.counter.to_bytes(4, "big")
            + AAGUIDS["production"]
            + len(credential_id).to_bytes(2, "big")
            + credential_id
            + cbor2.dumps({1: 2, 3: -7})
        )

    def leaf(self, auth_data: bytes) -> x509.Certificate:
        nonce = hashlib.sha256(auth_data + hashlib.sha256(CLIENT_DATA).digest()).digest()
        value = self.nonce_extension or bytes.fromhex("3024a1220420") + nonce
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(self.key_id.hex()))
            .issuer_name(INTERMEDIATE.subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if self.with_nonce:
            extension = x509.UnrecognizedExtension(NONCE_EXTENSION, value)
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(INTERMEDIATE_KEY, hashes.SHA256())

    def attestation_object(self, auth_data: bytes | None = None) -> bytes:
        auth_data = self.auth_data() if auth_data is None else auth_data
        x5c = [
            self.leaf(auth_data).public_bytes(serialization.Encoding.DER),
            INTERMEDIATE.public_bytes(serialization.Encoding.DER),
        ]
        statement = {"x5c": x5c, "receipt": b"receipt"}
        encoded: bytes = cbor2.dumps(
            {"fmt": "apple-appattest", "attStmt": statement, "authData": auth_data}
        )
        return encoded

    def assertion(self, counter: int, client_data: bytes) -> bytes:
        authenticator_data = (
            app_id_hash(*APP_ID.split(".", 1)) + b"\x40" + counter.to_bytes(4, "big")
        )
        nonce = hashlib.sha256(authenticator_data + hashlib.sha256(client_data).digest()).digest()
        signature = self.key.sign(nonce, ec.ECDSA(hashes.SHA256()))
        encoded: bytes = cbor2.dumps(
            {"signature": signature, "authenticatorData": authenticator_data}
        )
        return encoded


def _verify(device: Device, attestation_object: bytes | None = None) -> ec.EllipticCurvePublicKey:
    attested = verify_attestation(
        attestation_object=attestation_object or device.attestation_object(),
        client_data=CLIENT_DATA,
        key_id=device.key_id,
        app_id=APP_ID,
        environment="production",
        now=NOW,
        root=ROOT,
    )
    return attested.public_key


def _reason(device: Device, attestation_object: bytes | None = None) -> str:
    with pytest.raises(AttestationError) as refused:
        _verify(device, attestation_object)
    return refused.value.reason


def test_a_well_made_attestation_verifies() -> None:
    device = Device()
    key = _verify(device)
    assert (
        verify_assertion(
            assertion=device.assertion(1, b"request"),
            client_data=b"request",
            public_key=key,
            app_id=APP_ID,
            previous_counter=0,
        )
        == 1
    )


def test_a_key_that_already_signed_is_not_fresh() -> None:
    # Apple: the counter of a new key's attestation is zero.
    assert _reason(Device(counter=1)) == "counter_nonzero"


def test_the_credential_id_must_be_the_key_id() -> None:
    # Apple: credentialId equals the key identifier; here the certificate and key id agree.
    assert _reason(Device(credential_id=bytes(32))) == "credential_id_mismatch"


def test_a_credential_id_longer_than_the_data_is_malformed() -> None:
    device = Device()
    auth_data = device.auth_data()
    truncated = auth_data[:55] + device.key_id[:8]
    assert _reason(device, device.attestation_object(truncated)) == "malformed"


def test_authenticator_data_shorter_than_its_fixed_fields_is_malformed() -> None:
    device = Device()
    assert _reason(device, device.attestation_object(device.auth_data()[:54])) == "malformed"


def test_a_leaf_without_the_nonce_extension_is_malformed() -> None:
    assert _reason(Device(with_nonce=False)) == "malformed"


def test_a_nonce_extension_of_another_shape_is_malformed() -> None:
    # DER SEQUENCE { [1] EXPLICIT OCTET STRING } holding 31 bytes instead of 32.
    assert _reason(Device(nonce_extension=bytes.fromhex("3023a121041f") + bytes(31))) == "malformed"


def test_a_leaf_key_off_p256_is_malformed() -> None:
    assert _reason(Device(key=ec.generate_private_key(ec.SECP384R1()))) == "malformed"


def test_a_certificate_that_is_not_bytes_is_malformed() -> None:
    device = Device()
    decoded = cbor2.loads(device.attestation_object())
    decoded["attStmt"]["x5c"][1] = "not bytes"
    assert _reason(device, cbor2.dumps(decoded)) == "malformed"


def test_an_assertion_for_another_app_is_refused() -> None:
    device = Device()
    with pytest.raises(AttestationError) as refused:
        verify_assertion(
            assertion=device.assertion(1, b"request"),
            client_data=b"request",
            public_key=_verify(device),
            app_id="ABCDE12345.com.example.other",
            previous_counter=0,
        )
    assert refused.value.reason == "rp_id_mismatch"


def test_a_certificate_of_an_unknown_version_is_malformed() -> None:
    device = Device()
    decoded = cbor2.loads(device.attestation_object())
    leaf = decoded["attStmt"]["x5c"][0]
    version = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2, i.e. X.509 v3
    assert leaf.count(version) == 1
    decoded["attStmt"]["x5c"][0] = leaf.replace(version, bytes.fromhex("a003020103"))
    assert _reason(device, cbor2.dumps(decoded)) == "malformed"
