"""Apple App Attest: verifying an attestation and the assertions that follow it.

The checks are the ones Apple lists in "Validating apps that connect to your server"
(App Attest documentation, "Verify the attestation" and "Verify the assertion"); the
authenticator data layout is WebAuthn's (W3C Web Authentication, §6.1 "Authenticator
Data", §6.5.1 "Attested Credential Data")::

    rpIdHash (32) | flags (1) | signCount (4, big-endian)
        | aaguid (16) | credentialIdLength (2, big-endian) | credentialId | public key (COSE)

The second line is present in an attestation only. An assertion's authenticator data is
the first 37 bytes, although Apple sets the "attested credential data" flag there too,
so the flags are never used to decide what follows.

This module is a pure core: no I/O, no storage. The caller supplies the challenge it
issued (inside ``client_data``), the time, the trust anchor and the stored counter, and
keeps the returned key and counter. Every size is bounded before anything is parsed, and
every refusal is an ``AttestationError`` whose ``reason`` names the check that failed.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from bastion.errors import AttestationError, AttestationReason

__all__ = [
    "AttestationError",
    "AttestationReason",
    "AttestedKey",
    "Environment",
    "app_id_hash",
    "verify_assertion",
    "verify_attestation",
]

Environment = Literal["production", "development"]

# Size bounds, checked before any parsing. Real attestation objects are about 5.5 KB
# (two certificates of under 1 KB and a receipt of about 3.7 KB), assertions about 140
# bytes; the bounds leave room for growth and refuse anything an order of magnitude off.
MAX_ATTESTATION_OBJECT = 16 * 1024
MAX_ASSERTION = 1024
MAX_CERTIFICATES = 4
MAX_CERTIFICATE = 4 * 1024
MAX_CREDENTIAL_ID = 64
# Containers nest at most three deep (object -> attStmt -> x5c); the rest are byte strings.
_MAX_CBOR_DEPTH = 4

FORMAT = "apple-appattest"
# Apple: the nonce sits in the leaf certificate's extension with this OID...
NONCE_EXTENSION = x509.ObjectIdentifier("1.2.840.113635.100.8.2")
# ...as DER SEQUENCE { [1] EXPLICIT OCTET STRING (32 bytes) }: this prefix, then the nonce.
_NONCE_PREFIX = bytes.fromhex("3024a1220420")

# Apple: the aaguid says which environment issued the key; a development key must never
# be accepted where production is expected.
AAGUIDS: dict[Environment, bytes] = {
    "development": b"appattestdevelop",
    "production": b"appattest" + bytes(7),
}

# WebAuthn §6.1 offsets.
_RP_ID_HASH = slice(0, 32)
_COUNTER = slice(33, 37)
_AAGUID = slice(37, 53)
_CREDENTIAL_ID_LENGTH = slice(53, 55)
_CREDENTIAL_ID_START = 55


@dataclass(frozen=True)
class AttestedKey:
    """What a verified attestation establishes: the app instance's key, to store under
    ``key_id`` with ``counter`` and check its assertions against. ``receipt`` is Apple's
    receipt (PKCS #7), for a later fraud-metric check with Apple."""

    public_key: ec.EllipticCurvePublicKey
    key_id: bytes
    counter: int
    receipt: bytes
    environment: Environment


def app_id_hash(team_id: str, bundle_id: str) -> bytes:
    """The rpIdHash an app's authenticator data must carry: SHA-256 of the App ID,
    ``<team id>.<bundle id>``."""
    return hashlib.sha256(f"{team_id}.{bundle_id}".encode()).digest()


def _rp_id_hash(app_id: str) -> bytes:
    return hashlib.sha256(app_id.encode()).digest()


def _nonce(authenticator_data: bytes, client_data: bytes) -> bytes:
    # Apple: nonce = SHA-256(authenticatorData || SHA-256(clientData)), for the
    # attestation (checked against the certificate) and for each assertion (signed).
    client_data_hash = hashlib.sha256(client_data).digest()
    return hashlib.sha256(authenticator_data + client_data_hash).digest()


def _decode_cbor(data: bytes, limit: int) -> Any:
    """One CBOR item filling ``data`` exactly; anything else is ``malformed``."""
    if len(data) > limit:
        raise AttestationError("malformed", f"over {limit} bytes")
    stream = io.BytesIO(data)
    # read_size=1 keeps the stream position exact, so trailing bytes can be refused.
    decoder = cbor2.CBORDecoder(
        stream,
        read_size=1,
        max_depth=_MAX_CBOR_DEPTH,
        allow_indefinite=False,
        allow_duplicate_keys=False,
    )
    try:
        item = decoder.decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as e:
        raise AttestationError("malformed", "not CBOR") from e
    if stream.tell() != len(data):
        raise AttestationError("malformed", "bytes after the CBOR item")
    return item


def _field(mapping: Any, key: str, kind: type[Any]) -> Any:
    if not isinstance(mapping, dict) or not isinstance(mapping.get(key), kind):
        raise AttestationError("malformed", f"{key} missing or not a {kind.__name__}")
    return mapping[key]


@dataclass(frozen=True)
class _AttestationObject:
    leaf: x509.Certificate
    intermediates: list[x509.Certificate]
    receipt: bytes
    auth_data: bytes


def _parse_attestation_object(data: bytes) -> _AttestationObject:
    # WebAuthn attestation object: {fmt, attStmt, authData}; Apple's statement is
    # {x5c: [leaf, intermediate], receipt}.
    obj = _decode_cbor(data, MAX_ATTESTATION_OBJECT)
    if _field(obj, "fmt", str) != FORMAT:
        raise AttestationError("malformed", f"fmt is not {FORMAT}")
    statement = _field(obj, "attStmt", dict)
    x5c = _field(statement, "x5c", list)
    if not 1 <= len(x5c) <= MAX_CERTIFICATES:
        raise AttestationError("malformed", "x5c count out of bounds")
    if not all(isinstance(der, bytes) and len(der) <= MAX_CERTIFICATE for der in x5c):
        raise AttestationError("malformed", "x5c entry not a certificate of bounded size")
    try:
        certificates = [x509.load_der_x509_certificate(der) for der in x5c]
    except (ValueError, x509.InvalidVersion) as e:
        raise AttestationError("malformed", "x5c entry is not DER X.509") from e
    return _AttestationObject(
        leaf=certificates[0],
        intermediates=certificates[1:],
        receipt=_field(statement, "receipt", bytes),
        auth_data=_field(obj, "authData", bytes),
    )


def _check_validity(certificates: list[x509.Certificate], now: datetime) -> None:
    # Checked here, before the path builder, so an expired or not-yet-valid certificate
    # is reported as such: the verifier's error text is not an interface. Bounds are
    # inclusive (RFC 5280 §4.1.2.5). Apple back-dates notBefore by about a day.
    for certificate in certificates:
        if now < certificate.not_valid_before_utc:
            raise AttestationError("certificate_not_yet_valid", str(certificate.subject))
        if now > certificate.not_valid_after_utc:
            raise AttestationError("certificate_expired", str(certificate.subject))


def _check_chain(parsed: _AttestationObject, root: x509.Certificate, now: datetime) -> None:
    # Apple step 1: the leaf chains through the intermediate to the App Attest root.
    # The leaf has no Authority Key Identifier, Subject Alternative Name or Extended Key
    # Usage, which the WebPKI end-entity policy requires; the CAs keep WebPKI's policy.
    _check_validity([parsed.leaf, *parsed.intermediates, root], now)
    verifier = (
        PolicyBuilder()
        .store(Store([root]))
        .time(now)
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(parsed.leaf, parsed.intermediates)
    except (VerificationError, ValueError) as e:
        raise AttestationError("certificate_chain_invalid", str(e)) from e


def _certified_nonce(leaf: x509.Certificate) -> bytes:
    # Certificates parse their extensions lazily: a malformed one surfaces here.
    try:
        extension = leaf.extensions.get_extension_for_oid(NONCE_EXTENSION).value
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError) as e:
        raise AttestationError("malformed", "leaf has no single, readable nonce extension") from e
    value = extension.public_bytes()
    if len(value) != len(_NONCE_PREFIX) + 32 or not value.startswith(_NONCE_PREFIX):
        raise AttestationError("malformed", "nonce extension is not the expected structure")
    return value[len(_NONCE_PREFIX) :]


def _leaf_key(leaf: x509.Certificate) -> ec.EllipticCurvePublicKey:
    try:
        key = leaf.public_key()
    except (ValueError, UnsupportedAlgorithm) as e:
        raise AttestationError("malformed", "leaf key unreadable") from e
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise AttestationError("malformed", "leaf key is not P-256")
    return key


def _key_identifier(key: ec.EllipticCurvePublicKey) -> bytes:
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return hashlib.sha256(point).digest()


def _credential_id(auth_data: bytes) -> bytes:
    length = int.from_bytes(auth_data[_CREDENTIAL_ID_LENGTH], "big")
    end = _CREDENTIAL_ID_START + length
    if length > MAX_CREDENTIAL_ID or end > len(auth_data):
        raise AttestationError("malformed", "credential id length out of bounds")
    return auth_data[_CREDENTIAL_ID_START:end]


def verify_attestation(
    *,
    attestation_object: bytes,
    client_data: bytes,
    key_id: bytes,
    app_id: str,
    environment: Environment,
    now: datetime,
    root: x509.Certificate,
) -> AttestedKey:
    """Verify an App Attest attestation and return the key it certifies.

    ``client_data`` is the exact bytes the app hashed (holding the one-time challenge
    the server issued); ``key_id`` the identifier the app sent (raw 32 bytes); ``app_id``
    ``<team id>.<bundle id>``; ``now`` an aware datetime; ``root`` Apple's App Attestation
    Root CA. Raises ``AttestationError`` naming the first check that fails.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    parsed = _parse_attestation_object(attestation_object)
    auth_data = parsed.auth_data
    if len(auth_data) < _CREDENTIAL_ID_START:
        raise AttestationError("malformed", "authenticator data too short")

    _check_chain(parsed, root, now)

    # Apple steps 2-4: the certificate binds the key to this authenticator data and
    # this client data (and so to the server's challenge): a replayed or altered
    # attestation, or one made for another challenge, fails here.
    expected_nonce = _certified_nonce(parsed.leaf)
    if not hmac.compare_digest(_nonce(auth_data, client_data), expected_nonce):
        raise AttestationError("nonce_mismatch")

    # Apple step 5: the key identifier the app sent is the hash of the certified key,
    # so the server stores the key the certificate vouches for under the id it is told.
    public_key = _leaf_key(parsed.leaf)
    if not hmac.compare_digest(_key_identifier(public_key), key_id):
        raise AttestationError("key_id_mismatch")

    # Apple step 6: the key was made for this app (rpIdHash = SHA-256 of the App ID),
    # not for another app of the same or another team.
    if not hmac.compare_digest(auth_data[_RP_ID_HASH], _rp_id_hash(app_id)):
        raise AttestationError("rp_id_mismatch")

    # Apple step 7: a fresh key has never signed an assertion.
    counter = int.from_bytes(auth_data[_COUNTER], "big")
    if counter != 0:
        raise AttestationError("counter_nonzero")

    # Apple step 8: the environment the key belongs to is the one expected.
    if auth_data[_AAGUID] != AAGUIDS[environment]:
        raise AttestationError("aaguid_mismatch")

    # Apple step 9: the credential id in the authenticator data is the key identifier.
    if not hmac.compare_digest(_credential_id(auth_data), key_id):
        raise AttestationError("credential_id_mismatch")

    return AttestedKey(
        public_key=public_key,
        key_id=bytes(key_id),
        counter=counter,
        receipt=parsed.receipt,
        environment=environment,
    )


def verify_assertion(
    *,
    assertion: bytes,
    client_data: bytes,
    public_key: ec.EllipticCurvePublicKey,
    app_id: str,
    previous_counter: int,
) -> int:
    """Verify an App Attest assertion by the key of a verified attestation and return
    its counter, which the caller stores in place of ``previous_counter``.

    ``client_data`` is the exact bytes the app hashed (the request, with a challenge
    the server issued). Raises ``AttestationError`` naming the first check that fails.
    """
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise ValueError("an App Attest key is a P-256 key")
    if previous_counter < 0:
        raise ValueError("previous_counter is never negative")
    obj = _decode_cbor(assertion, MAX_ASSERTION)
    signature = _field(obj, "signature", bytes)
    auth_data = _field(obj, "authenticatorData", bytes)
    # WebAuthn §6.1: rpIdHash, flags, signCount. Apple sets the "attested credential
    # data" flag here yet sends nothing after the counter: read the fixed 37 bytes.
    if len(auth_data) < _COUNTER.stop:
        raise AttestationError("malformed", "authenticator data too short")

    # Apple steps 1-3: the signature by the attested key covers the nonce, so it
    # vouches for both the authenticator data and the client data. The nonce is the
    # signed message: ECDSA with SHA-256 hashes it once more.
    try:
        public_key.verify(signature, _nonce(auth_data, client_data), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as e:
        raise AttestationError("signature_invalid") from e

    # Apple step 4: the assertion was made for this app.
    if not hmac.compare_digest(auth_data[_RP_ID_HASH], _rp_id_hash(app_id)):
        raise AttestationError("rp_id_mismatch")

    # Apple step 5: the counter only grows, so a replayed assertion is refused.
    counter = int.from_bytes(auth_data[_COUNTER], "big")
    if counter <= previous_counter:
        raise AttestationError("counter_not_increasing")
    return counter
