"""Refresh token families: rotation, reuse detection and grace (RFC 9700 §4.14.2; RFC 6749 §6)."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from bastion.errors import OAuthError
from bastion.oauth import refresh
from bastion.oauth.refresh import Family, Outcome

KEY = os.urandom(32)
NOW = 1_700_000_000.0
FAMILY = Family(
    family_id="f" * 22,
    salt=os.urandom(16),
    client_id="app",
    subject="u1",
    scope=("openid", "orders:read"),
    resources=(),
    generation=3,
    rotated_at=NOW,
    created_at=NOW - 100,
    last_used_at=NOW,
    expires_at=NOW + 86_400,
)
IDLE, GRACE = 3600.0, 10.0


def decide(generation: int, at: float, family: Family = FAMILY) -> Outcome:
    return refresh.decide(family, generation, at, idle_lifetime=IDLE, grace=GRACE)


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
