"""Levels of assurance and the RFC 9470 step-up challenge."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.accounts.levels import (
    ACR_MFA,
    ACR_PASSWORD,
    ACR_PHISHING_RESISTANT,
    ACR_VALUES,
    AMR_PASSKEY,
    AMR_PASSWORD,
    AMR_PASSWORD_OTP,
    Policy,
    method_acr,
    requested,
    satisfies,
    strongest,
)
from bastion.accounts.stepup import ERROR, Requirement, challenge, challenge_header


def test_methods_reach_their_levels() -> None:
    """RFC 8176 §2 amr values map to the documented levels."""
    assert method_acr(AMR_PASSWORD) == ACR_PASSWORD
    assert method_acr(AMR_PASSWORD_OTP) == ACR_MFA
    assert method_acr(AMR_PASSKEY) == ACR_PHISHING_RESISTANT
    assert method_acr(("hwk",)) == ACR_PASSWORD, "a key without user verification is one factor"


def test_requested_takes_the_weakest_acceptable_value() -> None:
    """OpenID Connect Core §3.1.2.1: any listed value is acceptable; unknown ones ignored."""
    assert requested([ACR_PHISHING_RESISTANT, ACR_MFA]) == ACR_MFA
    assert requested(["urn:other:gold"]) is None
    assert requested(["urn:other:gold", ACR_MFA]) == ACR_MFA
    assert requested([]) is None


def test_policies_map_to_levels() -> None:
    assert Policy.PASSWORD.acr == ACR_PASSWORD
    assert Policy.MFA.acr == ACR_MFA
    assert Policy.PASSKEY.acr == ACR_PHISHING_RESISTANT


@given(st.sampled_from(ACR_VALUES), st.sampled_from(ACR_VALUES))
def test_order_is_total_and_strongest_satisfies_both(a: str, b: str) -> None:
    assert satisfies(a, b) or satisfies(b, a)
    top = strongest(a, b)
    assert satisfies(top, a)
    assert satisfies(top, b)


def test_unknown_acr_satisfies_nothing() -> None:
    assert not satisfies("urn:other:gold", ACR_PASSWORD)
    assert not satisfies(None, ACR_PASSWORD)


def test_challenge_when_level_too_low() -> None:
    """RFC 9470 §3: error, acr_values and max_age in WWW-Authenticate."""
    needed = Requirement(acr=ACR_MFA, max_age=600)
    claims = {"acr": ACR_PASSWORD, "auth_time": 1000}
    header = challenge(claims, needed, now=1100)
    assert header == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="a stronger authentication is required", '
        f'acr_values="{ACR_MFA}", max_age="600"'
    )
    assert challenge({"acr": ACR_MFA, "auth_time": 1000}, needed, now=1100) is None
    assert challenge({"acr": ACR_PHISHING_RESISTANT, "auth_time": 1000}, needed, 1100) is None


def test_challenge_when_authentication_too_old() -> None:
    """RFC 9470 §3: max_age is compared with auth_time."""
    needed = Requirement(max_age=300)
    assert challenge({"auth_time": 1000}, needed, now=1300) is None
    old = challenge({"auth_time": 1000}, needed, now=1301)
    assert old is not None
    assert ERROR in old
    assert "more recent" in old
    assert challenge({}, needed, now=1000) is not None, "no auth_time: cannot prove freshness"
    assert challenge({"auth_time": True}, needed, now=1000) is not None


def test_requirement_is_validated() -> None:
    with pytest.raises(ValueError, match="unknown acr"):
        Requirement(acr="gold")
    with pytest.raises(ValueError, match="negative"):
        Requirement(max_age=-1)


def test_header_quotes_hostile_text() -> None:
    header = challenge_header(Requirement(), 'say "hi" \\ bye')
    assert 'error_description="say \\"hi\\" \\\\ bye"' in header
