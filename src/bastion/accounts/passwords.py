"""Password hashing with argon2id (RFC 9106) and the password policy of NIST SP 800-63B.

Hashing: parameters are stored in each hash, so they can be raised in configuration and
every hash is upgraded at its owner's next successful sign-in (``needs_rehash``).
``verify`` does the same work whether or not the account exists: for an unknown user it
checks a dummy hash made with the current parameters, so neither the response time nor
the work done reveals which usernames exist (OWASP ASVS V2.2; NIST SP 800-63B §5.2.2).

Policy (NIST SP 800-63B §5.1.1.2): a minimum length, long passphrases welcome, no
composition rules, and a refusal of passwords found in a list of commonly used ones
(``common_passwords.txt``: zxcvbn's list, shipped as data, never a network look-up)
or containing the username or the service's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bastion.accounts.settings import PasswordSettings
from bastion.errors import WeakPassword
from bastion.texts import Text

# Context words that make a password guessable for this service in particular.
SERVICE_WORDS = ("bastion",)


@dataclass(frozen=True)
class Work:
    """Argon2 work done so far: verifications and their summed memory-time cost."""

    verifications: int = 0
    cost: int = 0


class Passwords:
    def __init__(self, settings: PasswordSettings) -> None:
        self.settings = settings
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        self._dummy = self._hasher.hash("bastion dummy password for unknown users")
        self.work = Work()

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password: str, stored_hash: str | None) -> bool:
        """True if ``password`` matches; an absent hash still costs one full verification."""
        target = stored_hash or self._dummy
        try:
            parameters = extract_parameters(target)
        except InvalidHashError:
            target, parameters = self._dummy, extract_parameters(self._dummy)
        self.work = Work(
            self.work.verifications + 1,
            self.work.cost + parameters.time_cost * parameters.memory_cost,
        )
        try:
            return self._hasher.verify(target, password) and target == stored_hash
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True

    def check_policy(self, password: str, username: str) -> None:
        """Raise ``WeakPassword`` with a reason the user can act on."""
        check_policy(password, username, self.settings)


def check_policy(password: str, username: str, settings: PasswordSettings) -> None:
    # Length counts characters (code points), as NIST SP 800-63B §5.1.1.2 asks.
    if len(password) < settings.min_length:
        raise WeakPassword(Text("use at least %(n)d characters", n=settings.min_length))
    if len(password) > settings.max_length:
        raise WeakPassword(Text("use at most %(n)d characters", n=settings.max_length))
    folded = password.casefold()
    name = username.casefold()
    if len(name) >= 3 and name in folded:
        raise WeakPassword(Text("a password cannot contain the username"))
    if any(word in folded for word in SERVICE_WORDS):
        raise WeakPassword(Text("a password cannot contain the name of this service"))
    if folded in common_passwords():
        raise WeakPassword(Text("this password is too common; choose another"))


@cache
def common_passwords() -> frozenset[str]:
    """About 30,000 passwords seen most often in breaches, casefolded (read on first use).

    The list is zxcvbn's (attribution in ``common_passwords.LICENSE``), shipped as data:
    the policy needs only this list, and importing zxcvbn for it cost each process
    about 0.1 s and 20 MB (docs/accounts.md#common-passwords).
    """
    text = files("bastion.accounts").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(word.casefold() for word in text.splitlines() if word)
