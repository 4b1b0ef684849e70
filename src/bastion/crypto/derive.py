"""Purpose-bound keys derived from the master key (HKDF-SHA256, RFC 5869).

One master key, many uses: each use gets its own key through a distinct label, so a key
leaked from one use (a MAC key, a CSRF key) says nothing about the others.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derive_key(master_key: bytes, label: str, length: int = 32) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=None, info=f"bastion/{label}".encode()
    ).derive(master_key)
