"""Password hashing and policy (RFC 9106 argon2id; NIST SP 800-63B §5.1.1.2)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.accounts.passwords import Passwords, check_policy, common_passwords
from bastion.config import PasswordSettings
from bastion.errors import WeakPassword

FAST = PasswordSettings(argon2_time_cost=1, argon2_memory_kib=8_192)


@pytest.fixture(scope="module")
def passwords() -> Passwords:
    return Passwords(FAST)


def test_hash_verifies_and_stores_its_parameters(passwords: Passwords) -> None:
    hashed = passwords.hash("a long passphrase indeed")
    assert hashed.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert passwords.verify("a long passphrase indeed", hashed)
    assert not passwords.verify("a long passphrase indeeD", hashed)
    assert not passwords.needs_rehash(hashed)


def test_changed_parameters_ask_for_a_rehash(passwords: Passwords) -> None:
    """Stored parameters that differ from the configured ones are upgraded at sign-in."""
    old = PasswordHasher(time_cost=1, memory_cost=8_192, parallelism=2).hash("passphrase one")
    assert passwords.verify("passphrase one", old), "old hashes keep working"
    assert passwords.needs_rehash(old)
    assert passwords.needs_rehash("not a hash at all")


def test_unknown_user_costs_the_same_work(passwords: Passwords) -> None:
    """OWASP ASVS V2.2: no enumeration through the work done for unknown users."""
    hashed = passwords.hash("the real passphrase")
    start = passwords.work
    assert not passwords.verify("guess", hashed)
    middle = passwords.work
    assert not passwords.verify("guess", None)
    end = passwords.work
    assert middle.cost - start.cost == end.cost - middle.cost > 0
    assert end.verifications - middle.verifications == 1
    # A corrupted stored hash is not a cheap path either.
    assert not passwords.verify("guess", "$argon2id$garbage")
    assert passwords.work.cost - end.cost == end.cost - middle.cost


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "at least 8"),
        ("x" * 257, "at most 256"),
        ("password1", "too common"),
        ("Qwerty123", "too common"),
        ("alice-was-here-2026", "username"),
        ("my bastion passphrase", "name of this service"),
    ],
)
def test_policy_refuses(password: str, reason: str) -> None:
    with pytest.raises(WeakPassword, match=reason):
        check_policy(password, "Alice", PasswordSettings())


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "ü" * 8,  # any Unicode counts, per character
        "no-digits-no-capitals",  # no composition rules
        "x" * 256,
    ],
)
def test_policy_accepts(password: str) -> None:
    check_policy(password, "alice", PasswordSettings())


def test_minimum_is_configurable() -> None:
    with pytest.raises(WeakPassword, match="at least 12"):
        check_policy("elevenchars", "alice", PasswordSettings(min_length=12))
    with pytest.raises(ValueError, match="greater than or equal to 8"):
        PasswordSettings(min_length=6)


def test_common_list_is_offline_and_large() -> None:
    common = common_passwords()
    assert len(common) > 25_000
    assert "123456" in common


@settings(max_examples=200)
@given(st.text(max_size=300), st.text(max_size=40))
def test_policy_either_accepts_or_explains(password: str, username: str) -> None:
    """The policy never fails with anything but WeakPassword, whatever the input."""
    reason = ""
    try:
        check_policy(password, username, PasswordSettings())
    except WeakPassword as exc:
        reason = str(exc)
        assert reason
    assert bool(reason) == (
        not 8 <= len(password) <= 256
        or password.casefold() in common_passwords()
        or (len(username) >= 3 and username.casefold() in password.casefold())
        or "bastion" in password.casefold()
    )
