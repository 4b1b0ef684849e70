"""Apple App Attest verification against real attestations and assertions published by
open-source projects (tests/vectors/app-attest/README.md), their derived negatives, and
a few hand-made refusals of what Apple's "Validating apps that connect to your server"
rules out."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bastion.device.app_attest import (
    AttestationError,
    AttestedKey,
    app_id_hash,
    verify_assertion,
    verify_attestation,
)
from tests.support.pki import ca_certificate

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "app-attest"
VECTOR_FILES = sorted(VECTORS.glob("valid/*.json")) + sorted(VECTORS.glob("invalid/*.json"))
ROOT = x509.load_pem_x509_certificate((VECTORS / "apple-app-attestation-root-ca.pem").read_bytes())


def _load(name: str) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(VECTORS.joinpath(name).read_text(encoding="utf-8"))
    return vector


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _attest(vector: dict[str, Any], **changes: Any) -> AttestedKey:
    attestation = vector["attestation"]
    arguments: dict[str, Any] = {
        "attestation_object": _b64(attestation["attestation_object_b64"]),
        "client_data": _b64(attestation["client_data_b64"]),
        "key_id": _b64(vector["key_id_b64"]),
        "app_id": vector["app_id"],
        "environment": vector["environment"],
        "now": _when(vector["verify_at"]),
        "root": ROOT,
    }
    return verify_attestation(**(arguments | changes))


def _assert(
    vector: dict[str, Any], index: int, key: ec.EllipticCurvePublicKey, **changes: Any
) -> int:
    assertion = vector["assertions"][index]
    arguments: dict[str, Any] = {
        "assertion": _b64(assertion["assertion_b64"]),
        "client_data": _b64(assertion["client_data_b64"]),
        "public_key": key,
        "app_id": vector["app_id"],
        "previous_counter": assertion["previous_counter"],
    }
    return verify_assertion(**(arguments | changes))


def _stored_key(vector: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    key = serialization.load_der_public_key(_b64(vector["public_key_spki_der_b64"]))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_every_vector_is_here() -> None:
    # The README counts 5 valid and 16 invalid vectors; an empty glob must not pass.
    assert len(list(VECTORS.glob("valid/*.json"))) == 5
    assert len(list(VECTORS.glob("invalid/*.json"))) == 16


@pytest.mark.parametrize(
    "path", VECTOR_FILES, ids=[f"{p.parent.name}/{p.stem}" for p in VECTOR_FILES]
)
def test_vector(path: Path) -> None:
    vector = _load(f"{path.parent.name}/{path.name}")
    assert vector["id"] == path.stem
    invalid = vector["invalid"]
    failing = invalid["part"] if invalid else None
    accepted = {invalid["reason"], *invalid["also_acceptable"]} if invalid else set()
    assert (vector["expected"] == "valid") == (invalid is None)

    key = _stored_key(vector)
    if vector["attestation"] is not None:
        if failing == "attestation":
            with pytest.raises(AttestationError) as refused:
                _attest(vector)
            assert refused.value.reason in accepted
            # Attestation negatives carry no assertions: nothing else to verify.
            assert vector["assertions"] == []
            return
        attested = _attest(vector)
        assert attested.counter == 0
        assert attested.key_id == _b64(vector["key_id_b64"])
        assert attested.environment == vector["environment"]
        assert attested.receipt == _b64(vector["attestation"]["receipt_b64"])
        assert _spki(attested.public_key) == _spki(key)
        key = attested.public_key

    for index, assertion in enumerate(vector["assertions"]):
        if failing == f"assertions[{index}]":
            with pytest.raises(AttestationError) as refused:
                _assert(vector, index, key)
            assert refused.value.reason in accepted
        else:
            assert _assert(vector, index, key) == assertion["expected_counter"]


def test_app_id_hash_is_the_rp_id_hash_apple_signs() -> None:
    vector = _load("valid/node-app-attest-production.json")
    attestation_object = cbor2.loads(_b64(vector["attestation"]["attestation_object_b64"]))
    expected = app_id_hash(vector["team_id"], vector["bundle_id"])
    assert attestation_object["authData"][:32] == expected


def test_validity_bounds_are_inclusive() -> None:
    # The bas-d source pinned its clock at the leaf's notBefore exactly.
    vector = _load("valid/bas-d-appattest-development.json")
    not_before = _when(vector["attestation"]["leaf_not_before"])
    not_after = _when(vector["attestation"]["leaf_not_after"])
    assert _attest(vector, now=not_before).counter == 0
    assert _attest(vector, now=not_after).counter == 0
    with pytest.raises(AttestationError) as early:
        _attest(vector, now=not_before - timedelta(seconds=1))
    assert early.value.reason == "certificate_not_yet_valid"
    with pytest.raises(AttestationError) as late:
        _attest(vector, now=not_after + timedelta(seconds=1))
    assert late.value.reason == "certificate_expired"


def test_time_must_be_aware() -> None:
    vector = _load("valid/pyattest-development.json")
    with pytest.raises(ValueError, match="timezone-aware"):
        _attest(vector, now=_when(vector["verify_at"]).replace(tzinfo=None))


# Hand-made refusals: Apple's attestation object is CBOR of fmt "apple-appattest" with a
# statement {x5c, receipt}; anything that is not is refused before a certificate is read.


def _reencoded(vector: dict[str, Any], change: dict[str, Any]) -> bytes:
    decoded = cbor2.loads(_b64(vector["attestation"]["attestation_object_b64"]))
    encoded: bytes = cbor2.dumps(decoded | change)
    return encoded


def _refused_attestation(attestation_object: bytes) -> str:
    with pytest.raises(AttestationError) as refused:
        _attest(_load("valid/pyattest-development.json"), attestation_object=attestation_object)
    return refused.value.reason


def test_truncated_attestation_object_is_malformed() -> None:
    whole = _b64(_load("valid/pyattest-development.json")["attestation"]["attestation_object_b64"])
    assert _refused_attestation(whole[: len(whole) // 2]) == "malformed"
    assert _refused_attestation(whole + b"\x00") == "malformed"


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\xff" * 16, b"not cbor at all", cbor2.dumps([1, 2, 3]), cbor2.dumps({"fmt": 1})],
    ids=["empty", "break-codes", "text", "array", "fmt-not-text"],
)
def test_garbage_attestation_object_is_malformed(garbage: bytes) -> None:
    assert _refused_attestation(garbage) == "malformed"


def test_oversized_attestation_object_is_refused_before_parsing() -> None:
    oversized = cbor2.dumps({"fmt": "apple-appattest", "pad": bytes(20_000)})
    assert _refused_attestation(oversized) == "malformed"


def test_wrong_format_is_malformed() -> None:
    vector = _load("valid/pyattest-development.json")
    assert _refused_attestation(_reencoded(vector, {"fmt": "packed"})) == "malformed"
    # The same object re-encoded with its own format still verifies.
    assert _attest(vector, attestation_object=_reencoded(vector, {})).counter == 0


def test_too_many_certificates_is_malformed() -> None:
    vector = _load("valid/pyattest-development.json")
    decoded = cbor2.loads(_b64(vector["attestation"]["attestation_object_b64"]))
    statement = decoded["attStmt"] | {"x5c": decoded["attStmt"]["x5c"] * 3}
    assert _refused_attestation(_reencoded(vector, {"attStmt": statement})) == "malformed"


def _look_alike_root() -> x509.Certificate:
    # Same subject and validity as Apple's root, another key: only the signature differs.
    key = ec.generate_private_key(ec.SECP384R1())
    return ca_certificate(
        ROOT.subject, key, not_before=ROOT.not_valid_before_utc, not_after=ROOT.not_valid_after_utc
    )


def _self_signed_ca() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Not Apple")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=3650))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


@pytest.mark.parametrize("root", [_look_alike_root(), _self_signed_ca()], ids=["look-alike", "own"])
def test_a_root_that_is_not_apples_is_refused(root: x509.Certificate) -> None:
    for name in ("valid/pyattest-development.json", "valid/node-app-attest-production.json"):
        with pytest.raises(AttestationError) as refused:
            _attest(_load(name), root=root)
        assert refused.value.reason == "certificate_chain_invalid"


# Assertions (Apple, "Verify the assertion"): the counter must grow.


def test_replayed_assertion_counter_is_not_increasing() -> None:
    vector = _load("valid/node-app-attest-assertion.json")
    key = _stored_key(vector)
    assert _assert(vector, 0, key) == 1
    with pytest.raises(AttestationError) as refused:
        _assert(vector, 0, key, previous_counter=1)
    assert refused.value.reason == "counter_not_increasing"


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\xa0", b"\xff\x00", bytes(2000)],
    ids=["empty", "empty-map", "break-code", "oversized"],
)
def test_garbage_assertion_is_malformed(garbage: bytes) -> None:
    vector = _load("valid/node-app-attest-assertion.json")
    with pytest.raises(AttestationError) as refused:
        _assert(vector, 0, _stored_key(vector), assertion=garbage)
    assert refused.value.reason == "malformed"


def test_assertion_by_another_key_is_refused() -> None:
    vector = _load("valid/node-app-attest-assertion.json")
    other = _stored_key(_load("valid/bas-d-appattest-development.json"))
    with pytest.raises(AttestationError) as refused:
        _assert(vector, 0, other)
    assert refused.value.reason == "signature_invalid"


def test_key_id_is_checked_before_credential_id() -> None:
    # Apple checks the key identifier against the certified key (step 5) before the
    # credential id (step 9); both differ in this vector, so the first one names it.
    with pytest.raises(AttestationError) as refused:
        _attest(_load("invalid/neg-node-dev-wrong-key-id.json"))
    assert refused.value.reason == "key_id_mismatch"
