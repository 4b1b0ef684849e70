"""Play Integrity verdicts, on tokens made here with the test's own keys in Google's
format: a compact JWS (ES256) whose payload is the verdict, inside a compact JWE (A256KW,
A256GCM), as a classic request returns it when the app manages response encryption
("Make a classic API request", https://developer.android.com/google/play/integrity/classic).
The verdict's fields are those of "Integrity verdicts"
(https://developer.android.com/google/play/integrity/verdicts)."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwe, jws
from joserfc.jwe import JWERegistry
from joserfc.jwk import ECKey, OctKey, RSAKey
from joserfc.jws import JWSRegistry

from bastion.device.play_integrity import (
    MAX_TOKEN,
    IntegrityError,
    Verdict,
    check_verdict,
    decode_token,
)

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PACKAGE = "com.example.app"
CERT = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()
NONCE = b"server-issued nonce, 32 bytes ok"
# Android's Base64.URL_SAFE | NO_WRAP keeps the "=" padding, as Google's sample shows.
NONCE_TEXT = base64.urlsafe_b64encode(NONCE).decode()
REQUEST_HASH = "2cp24z6_bQ8Vx5Rh8OmdY8S9M3GbBqNdqbiJMRoWQjc"
AES_KEY = bytes(range(100, 132))
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
VERIFICATION_KEY = SIGNING_KEY.public_key()


def _verdict(**changes: Any) -> dict[str, Any]:
    """A classic verdict in the documented shape; ``changes`` maps "section.field" to a
    new value (``None`` removes it)."""
    verdict: dict[str, Any] = {
        "requestDetails": {
            "requestPackageName": PACKAGE,
            "nonce": NONCE_TEXT,
            "timestampMillis": str(int(NOW * 1000) - 5_000),
        },
        "appIntegrity": {
            "appRecognitionVerdict": "PLAY_RECOGNIZED",
            "packageName": PACKAGE,
            "certificateSha256Digest": [CERT],
            "versionCode": "42",
        },
        "deviceIntegrity": {
            "deviceRecognitionVerdict": ["MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY"],
            "recentDeviceActivity": {"deviceActivityLevel": "LEVEL_2"},
            "deviceAttributes": {"sdkVersion": 34},
        },
        "accountDetails": {"appLicensingVerdict": "LICENSED"},
        "environmentDetails": {
            "playProtectVerdict": "MEDIUM_RISK",
            "appAccessRiskVerdict": {"appsDetected": ["KNOWN_INSTALLED", "UNKNOWN_CAPTURING"]},
        },
    }
    for path, value in changes.items():
        section, field = path.split(".")
        if value is None:
            verdict[section].pop(field, None)
        else:
            verdict[section][field] = value
    return verdict


def _jws(payload: bytes, key: Any = SIGNING_KEY, alg: str = "ES256") -> str:
    signer = ECKey.import_key(key) if isinstance(key, ec.EllipticCurvePrivateKey) else key
    registry = JWSRegistry(algorithms=[alg])
    return jws.serialize_compact({"alg": alg}, payload, signer, registry=registry)


def _jwe(plaintext: str, key: Any = None, alg: str = "A256KW", enc: str = "A256GCM") -> str:
    key = OctKey.import_key(AES_KEY) if key is None else key
    registry = JWERegistry(algorithms=[alg, enc])
    return jwe.encrypt_compact({"alg": alg, "enc": enc}, plaintext, key, registry=registry)


def _token(verdict: dict[str, Any] | None = None) -> str:
    return _jwe(_jws(json.dumps(verdict or _verdict()).encode()))


def _decode(token: str) -> dict[str, Any]:
    return decode_token(token, decryption_key=AES_KEY, verification_key=VERIFICATION_KEY)


def _check(verdict: dict[str, Any], **rules: Any) -> Verdict:
    arguments: dict[str, Any] = {
        "package_name": PACKAGE,
        "certificate_digests": {CERT},
        "now": NOW,
        "max_age": 60.0,
        "nonce": NONCE,
        "min_version_code": 40,
        "required_device_level": "device",
        "require_licensed": True,
    }
    arguments.update(rules)
    return check_verdict(verdict, **arguments)


def _refused(reason: str) -> Any:
    return pytest.raises(IntegrityError, match=rf"^{reason}\b")


# Classic tokens: decryption and signature.


def test_a_classic_token_decrypts_verifies_and_passes_the_rules() -> None:
    """Every section of "Integrity verdicts" (requestDetails, appIntegrity,
    deviceIntegrity, accountDetails, environmentDetails) is read into the Verdict."""
    payload = _decode(_token())
    assert payload == _verdict()
    verdict = _check(payload)
    assert verdict.app_recognition == "PLAY_RECOGNIZED"
    assert verdict.package_name == PACKAGE
    assert verdict.certificate_digests == (CERT,)
    assert verdict.version_code == 42
    assert verdict.device_labels == {"MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY"}
    assert verdict.device_activity_level == "LEVEL_2"
    assert verdict.sdk_version == 34
    assert verdict.licensing == "LICENSED"
    assert verdict.timestamp == NOW - 5
    # Risk signals are reported, not refused: a risk engine weighs them later.
    assert verdict.play_protect == "MEDIUM_RISK"
    assert verdict.apps_detected == ("KNOWN_INSTALLED", "UNKNOWN_CAPTURING")


def test_a_wrong_decryption_key_is_refused() -> None:
    with _refused("decryption_failed"):
        decode_token(_token(), decryption_key=bytes(32), verification_key=VERIFICATION_KEY)


def test_a_tampered_ciphertext_is_refused() -> None:
    parts = _token().split(".")
    raw = bytearray(base64.urlsafe_b64decode(parts[3] + "=" * (-len(parts[3]) % 4)))
    raw[0] ^= 1
    parts[3] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with _refused("decryption_failed"):
        _decode(".".join(parts))


def test_dir_key_management_is_refused() -> None:
    token = _jwe(_jws(b"{}"), alg="dir")
    with _refused("unsupported_algorithm"):
        _decode(token)


def test_rsa_oaep_key_management_is_refused() -> None:
    rsa_key = RSAKey.import_key(rsa.generate_private_key(65537, 2048))
    token = _jwe(_jws(b"{}"), key=rsa_key, alg="RSA-OAEP")
    with _refused("unsupported_algorithm"):
        _decode(token)


def test_a128gcm_content_encryption_is_refused() -> None:
    token = _jwe(_jws(b"{}"), enc="A128GCM")
    with _refused("unsupported_algorithm"):
        _decode(token)


def test_a_compressed_jwe_is_refused() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"A256KW","enc":"A256GCM","zip":"DEF"}').rstrip(b"=")
    parts = _token().split(".")
    parts[0] = header.decode()
    with _refused("unsupported_algorithm"):
        _decode(".".join(parts))


def test_a_signature_by_another_key_is_refused() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    token = _jwe(_jws(json.dumps(_verdict()).encode(), key=other))
    with _refused("signature_invalid"):
        _decode(token)


def test_a_jws_with_alg_none_is_refused() -> None:
    head = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(_verdict()).encode()).rstrip(b"=").decode()
    with _refused("unsupported_algorithm"):
        _decode(_jwe(f"{head}.{body}.AAAA"))


def test_a_jws_with_hs256_is_refused() -> None:
    # An HMAC under the decryption key: a key the server holds must not sign verdicts.
    token = _jwe(_jws(json.dumps(_verdict()).encode(), key=OctKey.import_key(AES_KEY), alg="HS256"))
    with _refused("unsupported_algorithm"):
        _decode(token)


def test_an_oversized_token_is_refused_before_decoding() -> None:
    with _refused("malformed"):
        _decode("a" * (MAX_TOKEN + 1))


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b.c", "a.b.c.d.e.f", "a.b.c.d.", "a b.c.d.e.f", "é.b.c.d.e"],
)
def test_garbage_is_malformed(token: str) -> None:
    with _refused("malformed"):
        _decode(token)


def test_a_plaintext_that_is_not_a_jws_is_malformed() -> None:
    with _refused("malformed"):
        _decode(_jwe(json.dumps(_verdict())))


def test_the_decoder_refuses_keys_of_the_wrong_kind() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        decode_token(_token(), decryption_key=bytes(16), verification_key=VERIFICATION_KEY)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(ValueError, match="P-256"):
        decode_token(_token(), decryption_key=AES_KEY, verification_key=p384)


# The verdict rules, shared by classic and standard requests.


def test_a_standard_verdict_matches_its_request_hash() -> None:
    """Standard requests carry requestDetails.requestHash in place of the nonce
    ("Integrity verdicts", request details field), echoed as the app sent it."""
    verdict = _verdict(**{"requestDetails.nonce": None, "requestDetails.requestHash": REQUEST_HASH})
    assert _check(verdict, nonce=None, request_hash=REQUEST_HASH).version_code == 42
    with _refused("request_hash_mismatch"):
        _check(verdict, nonce=None, request_hash=REQUEST_HASH[:-1] + "A")


def test_a_nonce_without_padding_is_the_same_nonce() -> None:
    verdict = _verdict(**{"requestDetails.nonce": NONCE_TEXT.rstrip("=")})
    assert _check(verdict).licensing == "LICENSED"


def test_another_nonce_is_refused() -> None:
    other = base64.urlsafe_b64encode(os.urandom(32)).decode()
    with _refused("nonce_mismatch"):
        _check(_verdict(**{"requestDetails.nonce": other}))
    with _refused("nonce_mismatch"):
        _check(_verdict(**{"requestDetails.nonce": None}))


def test_exactly_one_of_nonce_and_request_hash_is_given() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        _check(_verdict(), request_hash=REQUEST_HASH)
    with pytest.raises(ValueError, match="exactly one"):
        _check(_verdict(), nonce=None)


def test_an_old_verdict_is_stale() -> None:
    old = str(int((NOW - 61) * 1000))
    with _refused("stale"):
        _check(_verdict(**{"requestDetails.timestampMillis": old}))


def test_a_verdict_from_the_future_is_stale() -> None:
    future = str(int((NOW + 120) * 1000))
    with _refused("stale"):
        _check(_verdict(**{"requestDetails.timestampMillis": future}))
    near = str(int((NOW + 30) * 1000))
    assert _check(_verdict(**{"requestDetails.timestampMillis": near})).timestamp == NOW + 30


def test_another_request_package_is_refused() -> None:
    with _refused("wrong_package"):
        _check(_verdict(**{"requestDetails.requestPackageName": "com.example.other"}))


def test_another_app_package_is_refused() -> None:
    with _refused("wrong_package"):
        _check(_verdict(**{"appIntegrity.packageName": "com.example.other"}))


@pytest.mark.parametrize("recognition", ["UNRECOGNIZED_VERSION", "UNEVALUATED"])
def test_an_app_play_does_not_recognize_is_refused(recognition: str) -> None:
    with _refused("unrecognized_app"):
        _check(_verdict(**{"appIntegrity.appRecognitionVerdict": recognition}))


def test_an_unknown_signing_certificate_is_refused() -> None:
    other = base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode()
    with _refused("unknown_certificate"):
        _check(_verdict(**{"appIntegrity.certificateSha256Digest": [other]}))
    with _refused("unknown_certificate"):
        _check(_verdict(**{"appIntegrity.certificateSha256Digest": [CERT, other]}))
    with _refused("unknown_certificate"):
        _check(_verdict(**{"appIntegrity.certificateSha256Digest": []}))


def test_an_old_version_is_refused() -> None:
    with _refused("version_too_old"):
        _check(_verdict(**{"appIntegrity.versionCode": "39"}))
    assert _check(_verdict(**{"appIntegrity.versionCode": "39"}), min_version_code=None)


def test_a_device_below_the_required_level_is_refused() -> None:
    basic = _verdict(**{"deviceIntegrity.deviceRecognitionVerdict": ["MEETS_BASIC_INTEGRITY"]})
    with _refused("device_integrity"):
        _check(basic)
    assert _check(basic, required_device_level="basic").device_labels == {"MEETS_BASIC_INTEGRITY"}
    with _refused("device_integrity"):
        _check(_verdict(), required_device_level="strong")
    virtual = _verdict(**{"deviceIntegrity.deviceRecognitionVerdict": ["MEETS_VIRTUAL_INTEGRITY"]})
    with _refused("device_integrity"):
        _check(virtual, required_device_level="basic")
    none = _verdict(**{"deviceIntegrity.deviceRecognitionVerdict": None})
    with _refused("device_integrity"):
        _check(none, required_device_level="basic")
    assert _check(none, required_device_level=None).device_labels == frozenset()


def test_an_unlicensed_user_is_refused_when_a_licence_is_required() -> None:
    unlicensed = _verdict(**{"accountDetails.appLicensingVerdict": "UNLICENSED"})
    with _refused("unlicensed"):
        _check(unlicensed)
    assert _check(unlicensed, require_licensed=False).licensing == "UNLICENSED"


def test_a_verdict_without_optional_signals_is_accepted() -> None:
    verdict = _verdict()
    del verdict["environmentDetails"]
    del verdict["deviceIntegrity"]["recentDeviceActivity"]
    del verdict["deviceIntegrity"]["deviceAttributes"]
    found = _check(verdict)
    assert (found.play_protect, found.apps_detected) == (None, None)
    assert (found.device_activity_level, found.sdk_version) == (None, None)


@pytest.mark.parametrize(
    "change",
    [
        {"requestDetails.timestampMillis": "soon"},
        {"requestDetails.timestampMillis": None},
        {"appIntegrity.versionCode": 4.2},
        {"appIntegrity.certificateSha256Digest": CERT},
        {"appIntegrity.appRecognitionVerdict": None},
        {"deviceIntegrity.deviceRecognitionVerdict": "MEETS_DEVICE_INTEGRITY"},
    ],
)
def test_fields_of_the_wrong_type_are_malformed(change: dict[str, Any]) -> None:
    with _refused("malformed"):
        _check(_verdict(**change))


def test_a_verdict_missing_a_section_is_malformed() -> None:
    verdict = _verdict()
    del verdict["appIntegrity"]
    with _refused("malformed"):
        _check(verdict)
