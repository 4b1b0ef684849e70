"""Password hashing with argon2id (RFC 9106), parameters stored in each hash.

``verify`` costs the same whether or not the account exists: for an unknown user it
checks against a fixed dummy hash, so response time does not reveal which usernames
exist (OWASP ASVS V2.2; NIST SP 800-63B §5.2.2 on not aiding enumeration).
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# RFC 9106 §4 second recommended option (64 MiB, 3 passes), fitted to a small server.
HASHER = PasswordHasher(time_cost=3, memory_cost=65_536, parallelism=1)
_DUMMY = HASHER.hash("bastion dummy password for unknown users")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify(password: str, stored_hash: str | None) -> bool:
    """True if ``password`` matches; an absent hash still costs one full verification."""
    try:
        return HASHER.verify(stored_hash or _DUMMY, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return HASHER.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True
