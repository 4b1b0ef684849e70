"""Refresh token families: rotation, reuse detection and grace (RFC 9700 §4.14.2; RFC 6749 §6)."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from bastion.errors import OAuthError
from bastion.oauth import refresh
from bastion.oauth.refresh import Family, Instance, Outcome

KEY = os.urandom(32)
NOW = 1_700_000_000.0
SALT = os.urandom(16)
APP = Instance.of(address="198.51.100.7", user_agent="Orders/3.1 CFNetwork")
FAMILY = Family(
    family_id="f" * 22,
    salt=SALT,
    client_id="app",
    subject="u1",
    scope=("openid", "orders:read"),
    resources=(),
    generation=3,
    rotated_at=NOW,
    created_at=NOW - 100,
    last_used_at=NOW,
    expires_at=NOW + 86_400,
    rotated_by=APP.fingerprint(SALT),
)
IDLE, GRACE = 3600.0, 10.0


def decide(
    generation: int,
    at: float,
    family: Family = FAMILY,
    *,
    instance: Instance | None = APP,
    grace: float = GRACE,
) -> Outcome:
    return refresh.decide(
        family, generation, at, idle_lifetime=IDLE, grace=grace, instance=instance
    )


def test_tokens_are_authentic_only_for_their_family_and_key() -> None:
    token = refresh.mint(KEY, FAMILY, 3)
    assert refresh.parse(token) == (FAMILY.family_id, 3)
    assert refresh.authentic(KEY, FAMILY, token)
    assert not refresh.authentic(os.urandom(32), FAMILY, token)
    assert not refresh.authentic(KEY, replace(FAMILY, salt=os.urandom(16)), token)
    forged = token.replace(".3.", ".4.")
    assert not refresh.authentic(KEY, FAMILY, forged), "the generation is covered by the MAC"


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "rt1",
        "rt1.x.1.y",
        "rt2." + "a" * 22 + ".1." + "b" * 43,
        "eyJhbGciOiJub25lIn0.e30.",
        "rt1." + "a" * 22 + ".-1." + "b" * 43,
    ],
)
def test_foreign_strings_are_not_tokens(junk: str) -> None:
    assert refresh.parse(junk) is None


def test_the_newest_token_rotates() -> None:
    assert decide(3, NOW + 1) is Outcome.ROTATE


def test_the_previous_token_inside_the_grace_window_replays() -> None:
    assert decide(2, NOW + GRACE) is Outcome.REPLAY


def test_the_previous_token_after_the_grace_window_is_reuse() -> None:
    """RFC 9700 §4.14.2: a rotated-out token presented again means it leaked."""
    assert decide(2, NOW + GRACE + 0.001) is Outcome.REUSE


@pytest.mark.parametrize(
    "elsewhere",
    [
        Instance.of(address="203.0.113.9", user_agent="Orders/3.1 CFNetwork"),
        Instance.of(address="198.51.100.7", user_agent="curl/8.5"),
        Instance.of(address="198.51.100.7", user_agent="Orders/3.1 CFNetwork", dpop_jkt="x"),
        None,
    ],
)
def test_inside_the_grace_window_only_the_rotating_instance_is_forgiven(
    elsewhere: Instance | None,
) -> None:
    """RFC 9700 §4.14.2: a thief replaying the token just rotated out, from another address
    or client software, is reuse even while the window is open."""
    assert decide(2, NOW + 1, instance=elsewhere) is Outcome.REUSE


def test_an_unknown_rotating_instance_forgives_nothing() -> None:
    """Families rotated before fingerprints were recorded get no grace."""
    assert decide(2, NOW + 1, replace(FAMILY, rotated_by="")) is Outcome.REUSE


@pytest.mark.parametrize("at", [NOW, NOW - 2])
def test_no_grace_window_forgives_nothing(at: float) -> None:
    """The default: even at the very instant of the rotation, or on a server whose clock
    is behind the one that rotated, the previous token is reuse."""
    assert decide(2, at, grace=0.0) is Outcome.REUSE


def test_fingerprints_are_keyed_per_family_and_cover_every_part() -> None:
    assert APP.fingerprint(SALT) == Instance.of(
        user_agent="Orders/3.1 CFNetwork", address="198.51.100.7"
    ).fingerprint(SALT), "the order of the parts does not matter"
    assert APP.fingerprint(SALT) != APP.fingerprint(os.urandom(16))
    assert "198.51.100.7" not in APP.fingerprint(SALT)
    joined = Instance.of(address="1.2.3.4", user_agent="x")
    assert joined.fingerprint(SALT) != Instance.of(address="1.2.3.4\x00user_agent=x").fingerprint(
        SALT
    )


def test_older_tokens_are_reuse_even_inside_the_window() -> None:
    """Never a fork: only the immediate predecessor may be replayed."""
    assert decide(1, NOW + 1) is Outcome.REUSE
    assert decide(0, NOW + 1) is Outcome.REUSE


def test_future_generations_are_reuse() -> None:
    assert decide(4, NOW + 1) is Outcome.REUSE


def test_lifetimes() -> None:
    assert decide(3, NOW + IDLE) is Outcome.EXPIRED
    fresh = replace(FAMILY, last_used_at=NOW + 80_000)
    assert decide(3, NOW + 86_400, fresh) is Outcome.EXPIRED, "absolute lifetime"
    assert decide(3, NOW + 1, replace(FAMILY, revoked_at=NOW)) is Outcome.REVOKED


def test_scope_can_only_narrow() -> None:
    assert refresh.narrow_scope(("openid", "orders:read"), ()) == ("openid", "orders:read")
    assert refresh.narrow_scope(("openid", "orders:read"), ("openid",)) == ("openid",)
    with pytest.raises(OAuthError) as caught:
        refresh.narrow_scope(("openid",), ("openid", "orders:write"))
    assert caught.value.error == "invalid_scope"
