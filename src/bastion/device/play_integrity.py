"""Google Play Integrity: decrypting a classic token and checking the verdict inside.

The verdict format is Google's "Integrity verdicts" page
(https://developer.android.com/google/play/integrity/verdicts): a JSON object with
``requestDetails``, ``appIntegrity``, ``deviceIntegrity``, ``accountDetails`` and
``environmentDetails``; field names here are Google's, unchanged.

Two paths reach a verdict:

- Classic requests, with "manage response encryption yourself" chosen in the Play
  Console ("Make a classic API request",
  https://developer.android.com/google/play/integrity/classic): the token is a compact
  JWE (``alg`` A256KW, ``enc`` A256GCM) under the console's 32-byte AES decryption key,
  whose plaintext is a compact JWS (ES256) under the console's EC verification key, whose
  payload is the verdict. ``decode_token`` refuses any other algorithm, bounds the token
  before decoding it, decrypts, checks the signature and returns the verdict, unchecked.
- Standard requests: only Google's servers decrypt them (the ``decodeIntegrityToken``
  call). A ``Decoder`` makes that call and returns the verdict (the response's
  ``tokenPayloadExternal``); the HTTP client is plugged in later, outside this module.

``check_verdict`` then applies the same rules to a verdict from either path, in the
order Google asks for: ``requestDetails`` first (package, the request hash or nonce the
server issued, the token's age), then the app (recognised by Play, its package, its
signing certificates, its version), the device (integrity labels) and the licence. What
the verdict says is returned as a ``Verdict``. A verdict that passes these rules but
carries risk signals (``appAccessRiskVerdict``, ``playProtectVerdict``, a high
``recentDeviceActivity`` level, a missing licence when one is not required) is returned,
not refused: a risk engine weighs those later.

This module is a pure core: no I/O, no storage. Every refusal is an ``IntegrityError``
whose ``reason`` names the check that failed; a caller's own mistake (a key of the wrong
size or curve, neither or both of ``request_hash`` and ``nonce``) is a ``ValueError``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwe import JWERegistry
from joserfc.jwk import OctKey

from bastion.crypto import jws
from bastion.errors import IntegrityError, IntegrityReason

__all__ = [
    "Decoder",
    "DeviceLevel",
    "IntegrityError",
    "IntegrityReason",
    "Verdict",
    "check_verdict",
    "decode_token",
]

DeviceLevel = Literal["basic", "device", "strong"]

# Size bounds, checked before any decoding. A classic token is a few kilobytes (a JWE
# around a JWS around a JSON verdict of a few hundred bytes to about two kilobytes with
# the optional environment signals); the bound refuses anything an order of magnitude off.
MAX_TOKEN = 16 * 1024
_MAX_JWE_HEADER = 512
# A small leeway for a timestamp ahead of the server's clock.
FUTURE_LEEWAY = 60.0

# The only algorithms Google uses for classic tokens (Play Console, "manage response
# encryption yourself"): AES key wrap of a content key, AES-GCM of the content, ES256.
JWE_ALG = "A256KW"
JWE_ENC = "A256GCM"
JWS_ALG = "ES256"
_JWE_REGISTRY = JWERegistry(algorithms=[JWE_ALG, JWE_ENC])
# Five base64url segments without padding (RFC 7516 §7.1). The encrypted key may be
# empty here ("dir" has none), so that such a token is refused for its algorithm.
_B64 = r"[A-Za-z0-9_-]"
_COMPACT_JWE = re.compile(rf"({_B64}+)\.{_B64}*\.{_B64}+\.{_B64}+\.{_B64}+")

PLAY_RECOGNIZED = "PLAY_RECOGNIZED"
LICENSED = "LICENSED"
# Google's device labels, weakest first. A device meeting a level also carries the
# labels below it; a label for a stronger level is accepted for a weaker requirement.
# MEETS_VIRTUAL_INTEGRITY (an emulator Google Play recognises) meets none of them.
DEVICE_LABELS: dict[DeviceLevel, str] = {
    "basic": "MEETS_BASIC_INTEGRITY",
    "device": "MEETS_DEVICE_INTEGRITY",
    "strong": "MEETS_STRONG_INTEGRITY",
}
_LEVELS: tuple[DeviceLevel, ...] = ("basic", "device", "strong")


class Decoder(Protocol):
    """Decodes a Standard request's token through Google's ``decodeIntegrityToken``
    call and returns the verdict (the answer's ``tokenPayloadExternal``), unchecked:
    ``check_verdict`` checks it like a classic one. Failures to reach Google are the
    implementation's own errors, not refusals of the token."""

    async def decode(self, package_name: str, token: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Verdict:
    """What a verdict that passed the rules says. ``None`` or empty where Google left a
    field out (optional signals are sent only to apps that opted in)."""

    request_package_name: str
    # Seconds since the epoch (``requestDetails.timestampMillis`` / 1000).
    timestamp: float
    app_recognition: str
    package_name: str | None
    certificate_digests: tuple[str, ...]
    version_code: int | None
    # deviceIntegrity.deviceRecognitionVerdict: MEETS_BASIC_INTEGRITY, ...,
    # MEETS_VIRTUAL_INTEGRITY; empty when the device meets none.
    device_labels: frozenset[str]
    # deviceIntegrity.recentDeviceActivity.deviceActivityLevel: LEVEL_1 ... LEVEL_4,
    # UNEVALUATED.
    device_activity_level: str | None
    # deviceIntegrity.deviceAttributes.sdkVersion.
    sdk_version: int | None
    # accountDetails.appLicensingVerdict: LICENSED, UNLICENSED, UNEVALUATED.
    licensing: str | None
    # environmentDetails.appAccessRiskVerdict.appsDetected; None when not sent.
    apps_detected: tuple[str, ...] | None
    # environmentDetails.playProtectVerdict: NO_ISSUES, NO_DATA, POSSIBLE_RISK, ...
    play_protect: str | None


def decode_token(
    token: str, *, decryption_key: bytes, verification_key: ec.EllipticCurvePublicKey
) -> dict[str, Any]:
    """The verdict inside a classic token, decrypted with the Play Console's decryption
    key (32 bytes) and its ES256 signature checked with the console's verification key
    (P-256). The verdict itself is not checked: pass it to ``check_verdict``."""
    if len(decryption_key) != 32:
        raise ValueError("the decryption key must be 32 bytes (AES-256)")
    if not isinstance(verification_key.curve, ec.SECP256R1):
        raise ValueError("the verification key must be on P-256 (ES256)")
    if not isinstance(token, str) or len(token) > MAX_TOKEN:
        raise IntegrityError("malformed", f"token over {MAX_TOKEN} bytes")
    match = _COMPACT_JWE.fullmatch(token)
    if match is None:
        raise IntegrityError("malformed", "not a compact JWE")
    header = _jwe_header(match.group(1))
    if header.get("alg") != JWE_ALG or header.get("enc") != JWE_ENC:
        raise IntegrityError("unsupported_algorithm", "JWE alg/enc not A256KW/A256GCM")
    if "zip" in header or "crit" in header:
        raise IntegrityError("unsupported_algorithm", "JWE zip or crit")
    try:
        decrypted = jwe.decrypt_compact(
            token, OctKey.import_key(decryption_key), registry=_JWE_REGISTRY
        )
    except (JoseError, ValueError) as e:
        raise IntegrityError("decryption_failed") from e
    plaintext = decrypted.plaintext or b""
    return _verified_payload(plaintext, verification_key)


def _jwe_header(segment: str) -> dict[str, Any]:
    if len(segment) > _MAX_JWE_HEADER * 4 // 3 + 3:
        raise IntegrityError("malformed", "JWE header too large")
    try:
        return jws.json_segment(segment, "JWE header")
    except ValueError as e:
        raise IntegrityError("malformed", "JWE header") from e


def _verified_payload(plaintext: bytes, key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    try:
        compact = jws.parse_compact(plaintext.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as e:
        raise IntegrityError("malformed", "the plaintext is not a compact JWS") from e
    if compact.header.get("alg") != JWS_ALG or not jws.header_members_allowed(compact.header):
        raise IntegrityError("unsupported_algorithm", "JWS alg not ES256, or header refused")
    public = jws.PublicKey(kid=None, kind="EC", curve="P-256", alg=None, use=None, key=key)
    if not jws.signed_by(public, JWS_ALG, compact.signing_input, compact.signature):
        raise IntegrityError("signature_invalid")
    return compact.claims


def check_verdict(
    payload: Mapping[str, Any],
    *,
    package_name: str,
    certificate_digests: Collection[str],
    now: float,
    max_age: float,
    request_hash: str | None = None,
    nonce: bytes | None = None,
    min_version_code: int | None = None,
    required_device_level: DeviceLevel | None = None,
    require_licensed: bool = False,
    future_leeway: float = FUTURE_LEEWAY,
) -> Verdict:
    """The verdict's findings, or ``IntegrityError`` naming the first rule it breaks.

    Exactly one of ``request_hash`` and ``nonce`` is given:

    - Standard requests: ``request_hash`` is the string the app passed as
      ``setRequestHash`` (at most 500 characters; what it hashes and how it is encoded
      is the app's and the server's choice). Google echoes it verbatim in
      ``requestDetails.requestHash``, compared here as a string.
    - Classic requests: ``nonce`` is the bytes the server issued. The app passes them
      to ``setNonce`` base64url-encoded (URL-safe alphabet, no line wrap, 16 to 500
      characters) and Google echoes that string in ``requestDetails.nonce``; it is
      decoded here (with or without ``=`` padding: Android's ``Base64.URL_SAFE`` pads
      unless ``NO_PADDING`` is added) and the bytes compared.

    ``certificate_digests`` are the base64url SHA-256 digests of the app's signing
    certificates, as Play reports them in ``appIntegrity.certificateSha256Digest``
    (the Play Console's "App signing key certificate" SHA-256, re-encoded); every digest
    the verdict reports must be one of them. ``now`` and ``max_age`` are seconds.
    """
    if (request_hash is None) == (nonce is None):
        raise ValueError("give exactly one of request_hash (standard) and nonce (classic)")
    request = _object(payload, "requestDetails")
    if request.get("requestPackageName") != package_name:
        raise IntegrityError("wrong_package", "requestDetails.requestPackageName")
    if request_hash is not None:
        found = request.get("requestHash")
        if not isinstance(found, str) or not hmac.compare_digest(
            found.encode(), request_hash.encode()
        ):
            raise IntegrityError("request_hash_mismatch")
    elif nonce is not None:
        found_nonce = _nonce_bytes(request.get("nonce"))
        if found_nonce is None or not hmac.compare_digest(found_nonce, nonce):
            raise IntegrityError("nonce_mismatch")
    timestamp = _integer(request.get("timestampMillis"), "requestDetails.timestampMillis")
    if timestamp is None:
        raise IntegrityError("malformed", "requestDetails.timestampMillis missing")
    seconds = timestamp / 1000
    if now - seconds > max_age:
        raise IntegrityError("stale", "older than the maximum age")
    if seconds - now > future_leeway:
        raise IntegrityError("stale", "from the future")

    app = _object(payload, "appIntegrity")
    recognition = app.get("appRecognitionVerdict")
    if not isinstance(recognition, str):
        raise IntegrityError("malformed", "appIntegrity.appRecognitionVerdict")
    if recognition != PLAY_RECOGNIZED:
        raise IntegrityError("unrecognized_app", recognition[:40])
    if app.get("packageName") != package_name:
        raise IntegrityError("wrong_package", "appIntegrity.packageName")
    digests = _strings(app.get("certificateSha256Digest"), "certificateSha256Digest")
    if not digests or not set(digests) <= set(certificate_digests):
        raise IntegrityError("unknown_certificate")
    version_code = _integer(app.get("versionCode"), "appIntegrity.versionCode")
    if min_version_code is not None and (version_code is None or version_code < min_version_code):
        raise IntegrityError("version_too_old")

    device = _object(payload, "deviceIntegrity")
    labels = frozenset(
        _strings(device.get("deviceRecognitionVerdict", []), "deviceRecognitionVerdict")
    )
    if required_device_level is not None:
        enough = _LEVELS[_LEVELS.index(required_device_level) :]
        if not labels & {DEVICE_LABELS[level] for level in enough}:
            raise IntegrityError("device_integrity", f"{required_device_level} not met")
    activity = _optional_object(device, "recentDeviceActivity")
    attributes = _optional_object(device, "deviceAttributes")

    account = _optional_object(payload, "accountDetails")
    licensing = _optional_string(account.get("appLicensingVerdict"), "appLicensingVerdict")
    if require_licensed and licensing != LICENSED:
        raise IntegrityError("unlicensed", (licensing or "absent")[:40])

    environment = _optional_object(payload, "environmentDetails")
    access = _optional_object(environment, "appAccessRiskVerdict")
    apps_detected = access.get("appsDetected")
    return Verdict(
        request_package_name=package_name,
        timestamp=seconds,
        app_recognition=recognition,
        package_name=package_name,
        certificate_digests=tuple(digests),
        version_code=version_code,
        device_labels=labels,
        device_activity_level=_optional_string(
            activity.get("deviceActivityLevel"), "deviceActivityLevel"
        ),
        sdk_version=_integer(attributes.get("sdkVersion"), "deviceAttributes.sdkVersion"),
        licensing=licensing,
        apps_detected=(
            None if apps_detected is None else tuple(_strings(apps_detected, "appsDetected"))
        ),
        play_protect=_optional_string(environment.get("playProtectVerdict"), "playProtectVerdict"),
    )


def _object(mapping: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = mapping.get(key) if isinstance(mapping, Mapping) else None
    if not isinstance(value, Mapping):
        raise IntegrityError("malformed", f"{key} missing or not an object")
    return value


def _optional_object(mapping: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    if mapping.get(key) is None:
        return {}
    return _object(mapping, key)


def _optional_string(value: Any, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise IntegrityError("malformed", f"{what} not a string")
    return value


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise IntegrityError("malformed", f"{what} not a list of strings")
    return value


def _integer(value: Any, what: str) -> int | None:
    """Google writes 64-bit integers (timestampMillis, versionCode) as JSON strings of
    decimal digits, and smaller ones (sdkVersion) as numbers; both are accepted."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise IntegrityError("malformed", f"{what} not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    raise IntegrityError("malformed", f"{what} not an integer")


def _nonce_bytes(value: Any) -> bytes | None:
    if not isinstance(value, str) or not 16 <= len(value) <= 500:
        return None
    unpadded = value.rstrip("=")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", unpadded) or len(value) - len(unpadded) > 2:
        return None
    try:
        return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError):
        return None
