"""App Attest checks that no published vector isolates, on attestations made here under a
CA of the test's own: the real vectors cannot be changed without breaking their nonce or
signature first. The layout is Apple's ("Validating apps that connect to your server")
and WebAuthn's (§6.1 authenticator data, §6.5.1 attested credential data)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.device.app_attest import AttestationError, verify_assertion, verify_attestation
from tests.support.app_attest import AppAttestDevice, AttestationCA

NOW = datetime(2026, 1, 1, tzinfo=UTC)
APP_ID = "ABCDE12345.com.example.app"
CLIENT_DATA = b"server-issued challenge"
CA = AttestationCA.make(NOW)
ROOT = CA.root


def _device(**knobs: Any) -> AppAttestDevice:
    """One attestation as an App Attest device would make it, with knobs to break it."""
    return AppAttestDevice(CA, APP_ID, at=NOW, client_data=CLIENT_DATA, **knobs)


def _verify(
    device: AppAttestDevice, attestation_object: bytes | None = None
) -> ec.EllipticCurvePublicKey:
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


def _reason(device: AppAttestDevice, attestation_object: bytes | None = None) -> str:
    with pytest.raises(AttestationError) as refused:
        _verify(device, attestation_object)
    return refused.value.reason


def test_a_well_made_attestation_verifies() -> None:
    device = _device()
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
    assert _reason(_device(counter=1)) == "counter_nonzero"


def test_the_credential_id_must_be_the_key_id() -> None:
    # Apple: credentialId equals the key identifier; here the certificate and key id agree.
    assert _reason(_device(credential_id=bytes(32))) == "credential_id_mismatch"


def test_a_credential_id_longer_than_the_data_is_malformed() -> None:
    device = _device()
    auth_data = device.auth_data()
    truncated = auth_data[:55] + device.key_id[:8]
    assert _reason(device, device.attestation_object(truncated)) == "malformed"


def test_authenticator_data_shorter_than_its_fixed_fields_is_malformed() -> None:
    device = _device()
    assert _reason(device, device.attestation_object(device.auth_data()[:54])) == "malformed"


def test_a_leaf_without_the_nonce_extension_is_malformed() -> None:
    assert _reason(_device(with_nonce=False)) == "malformed"


def test_a_nonce_extension_of_another_shape_is_malformed() -> None:
    # DER SEQUENCE { [1] EXPLICIT OCTET STRING } holding 31 bytes instead of 32.
    short = bytes.fromhex("3023a121041f") + bytes(31)
    assert _reason(_device(nonce_extension=short)) == "malformed"


def test_a_leaf_key_off_p256_is_malformed() -> None:
    assert _reason(_device(key=ec.generate_private_key(ec.SECP384R1()))) == "malformed"


def test_a_certificate_that_is_not_bytes_is_malformed() -> None:
    device = _device()
    decoded = cbor2.loads(device.attestation_object())
    decoded["attStmt"]["x5c"][1] = "not bytes"
    assert _reason(device, cbor2.dumps(decoded)) == "malformed"


def test_an_assertion_for_another_app_is_refused() -> None:
    device = _device()
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
    device = _device()
    decoded = cbor2.loads(device.attestation_object())
    leaf = decoded["attStmt"]["x5c"][0]
    version = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2, i.e. X.509 v3
    assert leaf.count(version) == 1
    decoded["attStmt"]["x5c"][0] = leaf.replace(version, bytes.fromhex("a003020103"))
    assert _reason(device, cbor2.dumps(decoded)) == "malformed"
