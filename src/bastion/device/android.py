"""Play Integrity for the device-trust service: the Play Console keys of classic requests,
the choice between local verification and Google's decoder, and what is kept of a
verdict.

A client whose ``[oauth.clients.device.android]`` names ``decryption_key_file`` and
``verification_key_file`` has its tokens decrypted and verified here (classic requests,
"manage response encryption yourself"); the files hold what the Play Console shows:
the decryption key as base64 of the raw 32-byte AES key, the verification key as base64
of the DER SubjectPublicKeyInfo of a P-256 key. Every other token goes to the injected
``Decoder`` (Google's ``decodeIntegrityToken``).

The nonce of a classic request and the ``requestHash`` of a standard one are the same
string, ``binding.request_hash(client_data)``: Google echoes a classic ``nonce``
(which ``check_verdict`` base64url-decodes, giving SHA-256 of the client data) and a
standard ``requestHash`` verbatim.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.device.apple import UNVERIFIABLE
from bastion.device.binding import request_hash
from bastion.device.play_integrity import DEVICE_LABELS, Verdict, check_verdict, decode_token
from bastion.device.records import Level
from bastion.device.settings import AndroidAppSettings
from bastion.errors import DeviceUnverifiable

log = logging.getLogger("bastion.device")

_STRONGEST_FIRST: tuple[tuple[Level, str], ...] = (
    ("strong", DEVICE_LABELS["strong"]),
    ("device", DEVICE_LABELS["device"]),
    ("basic", DEVICE_LABELS["basic"]),
)


@dataclass(frozen=True)
class ConsoleKeys:
    """The Play Console's keys of one app (classic requests)."""

    decryption_key: bytes
    verification_key: ec.EllipticCurvePublicKey


def _unreadable(what: str) -> DeviceUnverifiable:
    # The operator's problem, not the device's: logged, never shown.
    log.warning("Play Integrity keys cannot be used: %s", what)
    return DeviceUnverifiable(UNVERIFIABLE, "console_keys_unreadable")


def _base64_file(path: Path, what: str) -> bytes:
    try:
        text = path.read_text(encoding="ascii")
        return base64.b64decode("".join(text.split()), validate=True)
    except (OSError, UnicodeDecodeError, binascii.Error, ValueError) as exc:
        raise _unreadable(f"{what} unreadable: {type(exc).__name__}") from exc


def load_console_keys(app: AndroidAppSettings) -> ConsoleKeys:
    assert app.decryption_key_file is not None
    assert app.verification_key_file is not None
    secret = _base64_file(app.decryption_key_file, "Play Integrity decryption key")
    if len(secret) != 32:
        raise _unreadable("Play Integrity decryption key is not 32 bytes")
    der = _base64_file(app.verification_key_file, "Play Integrity verification key")
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError) as exc:
        raise _unreadable("Play Integrity verification key is not DER") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _unreadable("Play Integrity verification key is not a P-256 key")
    return ConsoleKeys(secret, key)


def decode_locally(token: str, keys: ConsoleKeys) -> dict[str, Any]:
    return decode_token(
        token, decryption_key=keys.decryption_key, verification_key=keys.verification_key
    )


def check(
    payload: Mapping[str, Any], app: AndroidAppSettings, client_data: bytes, now: float
) -> Verdict:
    """The verdict's findings under the client's declaration, bound to ``client_data``:
    ``requestHash`` when the verdict carries one (standard requests), else the classic
    ``nonce``. A verdict's level is judged by the risk engine, not refused here."""
    request = payload.get("requestDetails") if isinstance(payload, Mapping) else None
    standard = isinstance(request, Mapping) and "requestHash" in request
    binding: dict[str, Any] = (
        {"request_hash": request_hash(client_data)}
        if standard
        else {"nonce": hashlib.sha256(client_data).digest()}
    )
    return check_verdict(
        payload,
        package_name=app.package_name,
        certificate_digests=app.certificate_digests,
        now=now,
        max_age=app.max_verdict_age,
        min_version_code=app.min_version_code,
        **binding,
    )


def level(verdict: Verdict) -> Level:
    """The strongest integrity label the device meets ("none" when it meets none, or
    only MEETS_VIRTUAL_INTEGRITY)."""
    for name, label in _STRONGEST_FIRST:
        if label in verdict.device_labels:
            return name
    return "none"


def summary(verdict: Verdict) -> dict[str, Any]:
    """What a device record keeps of a verdict: its findings, never the token."""
    return {
        "device_labels": sorted(verdict.device_labels),
        "app_recognition": verdict.app_recognition,
        "version_code": verdict.version_code,
        "certificate_digests": list(verdict.certificate_digests),
        "licensing": verdict.licensing,
        "play_protect": verdict.play_protect,
        "apps_detected": None if verdict.apps_detected is None else list(verdict.apps_detected),
        "device_activity_level": verdict.device_activity_level,
        "sdk_version": verdict.sdk_version,
        "timestamp": verdict.timestamp,
    }
