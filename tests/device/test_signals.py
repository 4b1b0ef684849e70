"""The pure parts of gathering risk signals: versions, the Play Integrity verdict
summary, the network-change heuristic, and composing ``risk.Signals`` from a record."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bastion.device import versions
from bastion.device.records import Device
from bastion.device.risk import AttestationLevel, PlayProtect
from bastion.device.settings import ClientDeviceSettings
from bastion.device.signals import Found, RiskRequest, compose
from bastion.device.velocity import moved, network_of
from bastion.device.verdicts import verdict_signals

NOW = 1_700_000_000.0
ANDROID = Device(
    device_id="dev-a",
    platform="android",
    client_id="app",
    level="strong",
    first_seen=NOW - 100,
    last_seen=NOW - 100,
    attested_at=NOW - 3600,
    verdict={
        "device_labels": ["MEETS_DEVICE_INTEGRITY", "MEETS_STRONG_INTEGRITY"],
        "app_recognition": "PLAY_RECOGNIZED",
        "licensing": "LICENSED",
        "play_protect": "NO_ISSUES",
        "apps_detected": ["KNOWN_INSTALLED"],
        "version_code": 4021,
    },
    app_version="4.2.0",
    dpop_jkt="jkt-a",
    user_ids=("alice",),
)
IOS = replace(ANDROID, device_id="dev-i", platform="ios", level="device", verdict=None)
ALICE = RiskRequest(user_id="alice", client_id="app", jkt="jkt-a", bound=True, ip="192.0.2.7")


@pytest.mark.parametrize(
    ("version", "minimum", "expected"),
    [
        ("1.10", "1.9", False),  # numeric, not lexical
        ("1.9", "1.10", True),
        ("2.0", "2", False),  # trailing zeros do not count
        ("2", "2.0.1", True),
        ("2.1-beta", "1.0", True),  # not dotted numbers: cannot be shown to be recent
        (None, "1.0", False),  # unknown: nothing to compare
        ("0.1", None, False),
    ],
)
def test_versions_compare_as_dotted_numbers(
    version: str | None, minimum: str | None, expected: bool
) -> None:
    assert versions.outdated(version, minimum) is expected


def test_a_version_never_released_is_flagged_only_against_a_list() -> None:
    assert versions.unreleased("9.9.9", ("4.2.0", "4.1.0"))
    assert not versions.unreleased(" 4.2.0 ", ("4.2.0",))
    assert not versions.unreleased("9.9.9", ())
    assert not versions.unreleased(None, ("4.2.0",))


def test_a_verdict_summary_maps_to_the_signals() -> None:
    # https://developer.android.com/google/play/integrity/verdicts
    good = verdict_signals(ANDROID.verdict)
    assert (good.app_recognized, good.licensed, good.play_protect) == (
        True,
        True,
        PlayProtect.NO_ISSUES,
    )
    # KNOWN_INSTALLED is every phone: it does not count as a risk.
    assert good.app_access_risk == frozenset()
    bad = verdict_signals(
        {
            "app_recognition": "UNRECOGNIZED_VERSION",
            "licensing": "UNLICENSED",
            "play_protect": "HIGH_RISK",
            "apps_detected": ["KNOWN_INSTALLED", "UNKNOWN_CAPTURING", "KNOWN_CONTROLLING"],
        }
    )
    assert (bad.app_recognized, bad.licensed, bad.play_protect) == (
        False,
        False,
        PlayProtect.HIGH_RISK,
    )
    assert bad.app_access_risk == {"UNKNOWN_CAPTURING", "KNOWN_CONTROLLING"}
    silent = verdict_signals(
        {"app_recognition": "UNEVALUATED", "licensing": None, "play_protect": "NO_DATA"}
    )
    assert (silent.app_recognized, silent.licensed, silent.play_protect) == (
        None,
        None,
        PlayProtect.UNKNOWN,
    )
    # Malformed values say nothing rather than failing the request.
    odd = verdict_signals({"app_recognition": 3, "apps_detected": "KNOWN_CAPTURING"})
    assert (odd.app_recognized, odd.app_access_risk) == (None, frozenset())


def test_source_networks_are_slash_24_and_slash_48() -> None:
    assert network_of("192.0.2.7") == "192.0.2.0/24"
    assert network_of("::ffff:192.0.2.200") == "192.0.2.0/24"
    assert network_of("2001:db8:1:2::5") == "2001:db8:1::/48"
    assert network_of("testclient") is None
    assert network_of(None) is None


def test_a_network_change_within_the_window_is_impossible_velocity() -> None:
    last = f"{NOW!r}|192.0.2.0/24".encode()
    assert moved(last, "198.51.100.0/24", NOW + 30, 60)
    assert not moved(last, "198.51.100.0/24", NOW + 61, 60)  # long enough to travel
    assert not moved(last, "192.0.2.0/24", NOW + 1, 60)  # same network
    assert not moved(None, "192.0.2.0/24", NOW, 60)
    assert not moved(b"garbage", "192.0.2.0/24", NOW, 60)


def test_a_strong_android_device_composes_to_safe_signals() -> None:
    s = compose(ALICE, Found(ANDROID), None, NOW)
    assert s.attestation is AttestationLevel.STRONG
    assert s.attestation_age == 3600
    assert (s.app_recognized, s.licensed, s.play_protect) == (True, True, PlayProtect.NO_ISSUES)
    assert s.dpop_bound
    assert not s.new_device
    assert not s.attestation_unavailable


def test_app_attest_recognises_the_app_and_says_nothing_of_licences() -> None:
    s = compose(ALICE, Found(IOS), None, NOW)
    assert (s.attestation, s.app_recognized, s.licensed) == (AttestationLevel.DEVICE, True, None)
    assert s.play_protect is PlayProtect.UNKNOWN


def test_no_device_is_never_attested_and_never_bound() -> None:
    s = compose(ALICE, Found(None), None, NOW)
    assert (s.attestation, s.attestation_age, s.dpop_bound) == (AttestationLevel.NONE, None, False)
    assert not s.new_device


def test_versions_and_users_are_judged_against_the_client() -> None:
    client = ClientDeviceSettings(min_app_version="4.10", released_versions=("4.10.0", "4.2.0"))
    s = compose(replace(ALICE, user_id="bob"), Found(ANDROID), client, NOW)
    assert s.app_outdated
    assert not s.app_unreleased
    assert s.new_device
    tampered = compose(ALICE, Found(replace(ANDROID, app_version="4.11.0")), client, NOW)
    assert tampered.app_unreleased
    assert not tampered.app_outdated


def test_a_claimed_device_can_only_add_risk() -> None:
    # The browser names a thumbprint (dpop_jkt) it cannot prove: a good device's
    # standing is not borrowed, a bad device's signs still count.
    claimed = replace(ALICE, bound=False, claimed=True)
    s = compose(claimed, Found(ANDROID), None, NOW)
    assert (s.attestation, s.attestation_age) == (AttestationLevel.NONE, None)
    assert (s.app_recognized, s.licensed, s.play_protect) == (None, None, PlayProtect.UNKNOWN)
    bad = replace(ANDROID, verdict={"app_recognition": "UNRECOGNIZED_VERSION"})
    assert compose(claimed, Found(bad), None, NOW).app_recognized is False
    assert compose(replace(claimed, user_id="bob"), Found(ANDROID), None, NOW).new_device
