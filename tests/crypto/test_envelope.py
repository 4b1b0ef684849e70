"""Master-key envelope: AES-256-GCM, versioned, bound to its row."""

from __future__ import annotations

import os

import pytest

from bastion.crypto.envelope import VERSION, Envelope
from bastion.errors import MasterKeyError


@pytest.fixture
def envelope() -> Envelope:
    return Envelope(os.urandom(32))


def test_round_trip(envelope: Envelope) -> None:
    sealed = envelope.seal(b"private key", b"kid-1")
    assert sealed[:1] == VERSION
    assert b"private key" not in sealed
    assert envelope.open(sealed, b"kid-1") == b"private key"


def test_each_seal_uses_a_fresh_nonce(envelope: Envelope) -> None:
    assert envelope.seal(b"same", b"aad") != envelope.seal(b"same", b"aad")


def test_wrong_master_key_is_named_as_such(envelope: Envelope) -> None:
    sealed = envelope.seal(b"secret", b"kid")
    with pytest.raises(MasterKeyError, match="wrong master key"):
        Envelope(os.urandom(32)).open(sealed, b"kid")


@pytest.mark.parametrize("index", [20, 30, -1])
def test_tampered_ciphertext_is_refused(envelope: Envelope, index: int) -> None:
    sealed = bytearray(envelope.seal(b"secret", b"kid"))
    sealed[index] ^= 0x01
    with pytest.raises(MasterKeyError, match="corrupted"):
        envelope.open(bytes(sealed), b"kid")


def test_value_moved_to_another_row_is_refused(envelope: Envelope) -> None:
    """The associated data binds a ciphertext to its key id (NIST SP 800-38D §5.2.1)."""
    sealed = envelope.seal(b"secret", b"kid-a")
    with pytest.raises(MasterKeyError):
        envelope.open(sealed, b"kid-b")


@pytest.mark.parametrize("sealed", [b"", b"\x01", b"\x02" + b"\x00" * 40, b"\x01" + b"\x00" * 20])
def test_malformed_values_are_refused(envelope: Envelope, sealed: bytes) -> None:
    with pytest.raises(MasterKeyError):
        envelope.open(sealed, b"kid")


def test_master_key_must_be_32_bytes() -> None:
    with pytest.raises(MasterKeyError):
        Envelope(b"short")


def test_repr_shows_no_key_material() -> None:
    key = os.urandom(32)
    assert key.hex() not in repr(Envelope(key))
