"""Sealing secrets at rest under the master key (AES-256-GCM).

Format, version 1 (versioned so the cipher can change without a flag day)::

    0x01 | master key id (8 bytes) | nonce (12 bytes) | ciphertext + tag

The master key id is an HMAC of a fixed label under the key, so a ciphertext says
which master key sealed it without revealing anything about the key. That lets a
wrong master key be reported as "wrong key" rather than "corrupted data". The
associated data binds a ciphertext to its row (for example the key id), so a sealed
value cannot be moved to another row.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.errors import MasterKeyError

VERSION = b"\x01"
KEY_ID_BYTES = 8
NONCE_BYTES = 12
_HEADER = len(VERSION) + KEY_ID_BYTES + NONCE_BYTES


def master_key_id(master_key: bytes) -> bytes:
    return hmac.new(master_key, b"bastion master key id v1", hashlib.sha256).digest()[:KEY_ID_BYTES]


class Envelope:
    """Seals and opens values under one master key."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise MasterKeyError("the master key must be 32 bytes")
        self._aead = AESGCM(master_key)
        self.key_id = master_key_id(master_key)

    def __repr__(self) -> str:
        return f"Envelope(key_id={self.key_id.hex()})"

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return VERSION + self.key_id + nonce + self._aead.encrypt(nonce, plaintext, associated_data)

    def open(self, sealed: bytes, associated_data: bytes) -> bytes:
        if len(sealed) <= _HEADER or sealed[:1] != VERSION:
            raise MasterKeyError("sealed value is corrupted or of an unknown format version")
        key_id = sealed[1 : 1 + KEY_ID_BYTES]
        if not hmac.compare_digest(key_id, self.key_id):
            raise MasterKeyError(
                f"sealed under master key id {key_id.hex()}, but the configured master key "
                f"has id {self.key_id.hex()}: wrong master key"
            )
        nonce = sealed[1 + KEY_ID_BYTES : _HEADER]
        try:
            return self._aead.decrypt(nonce, sealed[_HEADER:], associated_data)
        except InvalidTag as exc:
            raise MasterKeyError(
                "sealed value does not authenticate: the data is corrupted"
            ) from exc
