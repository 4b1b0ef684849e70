"""App Attest for the device-trust service: the trust anchor, and the pure checks of
``app_attest`` tried against each bundle a client declares.

Apple's App Attestation Root CA ships with Bastion (``apple-app-attestation-root-ca.pem``
next to this module, from https://www.apple.com/certificateauthority/private/);
``[device].apple_root_file`` replaces it. A root that cannot be read is not the
device's fault: ``DeviceUnverifiable`` ("apple_root_unreadable").
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.device import app_attest
from bastion.device.settings import AppleAppSettings
from bastion.errors import AttestationError, DeviceUnverifiable

BUNDLED_ROOT = "apple-app-attestation-root-ca.pem"
KEY_ID_BYTES = 32
# 32 bytes are 43 base64url characters without padding.
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
# Standard base64 (what DCAppAttestService hands the app) read as base64url.
_TO_URL_ALPHABET = str.maketrans("+/", "-_")


# What the device is told when the trust data cannot be had.
UNVERIFIABLE = "The device cannot be verified right now; try again later."


def load_root(path: Path | None) -> x509.Certificate:
    """The App Attest root: ``path`` when configured, else the bundled one."""
    try:
        if path is None:
            pem = files("bastion.device").joinpath(BUNDLED_ROOT).read_bytes()
        else:
            pem = path.read_bytes()
        return x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError) as exc:
        raise DeviceUnverifiable(UNVERIFIABLE, "apple_root_unreadable") from exc


def key_id_bytes(key_id: str) -> bytes:
    """The raw key id from base64url or standard base64 (padding optional; the form
    DCAppAttestService gives), ``AttestationError`` ``malformed`` for anything else.
    Records keep the canonical base64url form, so one key has one spelling."""
    text = key_id.rstrip("=").translate(_TO_URL_ALPHABET)
    # The decoder skips characters outside the alphabet: check them first.
    if not _KEY_ID.fullmatch(text):
        raise AttestationError("malformed", "key id is not base64url of 32 bytes")
    raw = base64.urlsafe_b64decode(text + "=")
    if len(raw) != KEY_ID_BYTES:
        raise AttestationError("malformed", "key id is not 32 bytes")
    return raw


def verify_attestation(
    app: AppleAppSettings,
    *,
    attestation_object: bytes,
    client_data: bytes,
    key_id: bytes,
    now: float,
    root: x509.Certificate,
) -> app_attest.AttestedKey:
    """The attested key, for the first declared bundle whose App ID the key was made
    for. A key made for none of them raises ``AttestationError("rp_id_mismatch")``:
    another app (of this team or another) or a repackaged one."""
    at = datetime.fromtimestamp(now, UTC)
    for app_id in app.app_ids():
        try:
            return app_attest.verify_attestation(
                attestation_object=attestation_object,
                client_data=client_data,
                key_id=key_id,
                app_id=app_id,
                environment=app.environment,
                now=at,
                root=root,
            )
        except AttestationError as exc:
            if exc.reason != "rp_id_mismatch":
                raise
    raise AttestationError("rp_id_mismatch", "no declared bundle")


def verify_assertion(
    app: AppleAppSettings,
    *,
    assertion: bytes,
    client_data: bytes,
    public_key_der: bytes,
    previous_counter: int,
) -> int:
    """The assertion's counter, for the first declared bundle it was made for."""
    public_key = public_key_from_der(public_key_der)
    for app_id in app.app_ids():
        try:
            return app_attest.verify_assertion(
                assertion=assertion,
                client_data=client_data,
                public_key=public_key,
                app_id=app_id,
                previous_counter=previous_counter,
            )
        except AttestationError as exc:
            if exc.reason != "rp_id_mismatch":
                raise
    raise AttestationError("rp_id_mismatch", "no declared bundle")


def public_key_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_from_der(der: bytes) -> ec.EllipticCurvePublicKey:
    key = serialization.load_der_public_key(der)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        # Only what an attestation stored is read here: a different key is a broken record.
        raise ValueError("a stored App Attest key is a P-256 key")
    return key
