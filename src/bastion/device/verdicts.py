"""The Play Integrity verdict summary a device record keeps, and what the risk engine
reads from it.

A device record never stores an integrity token, only a summary of the last verdict
that passed ``play_integrity.check_verdict``, written by the device trust service. Its
keys are the ``play_integrity.Verdict`` field names, its values Google's words unchanged (https://developer.android.com/google/play/integrity/verdicts):

==========================  =========================================================
``app_recognition``         ``appIntegrity.appRecognitionVerdict`` (``PLAY_RECOGNIZED``,
                            ``UNRECOGNIZED_VERSION``, ``UNEVALUATED``)
``licensing``               ``accountDetails.appLicensingVerdict`` (``LICENSED``,
                            ``UNLICENSED``, ``UNEVALUATED``) or null
``play_protect``            ``environmentDetails.playProtectVerdict`` (``NO_ISSUES``,
                            ``NO_DATA``, ``POSSIBLE_RISK``, ``MEDIUM_RISK``,
                            ``HIGH_RISK``, ``UNEVALUATED``) or null
``apps_detected``           ``environmentDetails.appAccessRiskVerdict.appsDetected``
                            (a list) or null when not sent
``device_labels``           ``deviceIntegrity.deviceRecognitionVerdict`` (a list)
``device_activity_level``   ``deviceIntegrity.recentDeviceActivity.deviceActivityLevel``
``sdk_version``             ``deviceIntegrity.deviceAttributes.sdkVersion``
``version_code``            ``appIntegrity.versionCode``
==========================  =========================================================

``verdict_signals`` maps a summary to the risk signals: ``PLAY_RECOGNIZED`` is a
recognised app and ``UNRECOGNIZED_VERSION`` is not (``UNEVALUATED`` says nothing);
``LICENSED`` / ``UNLICENSED`` likewise; ``NO_DATA`` and ``UNEVALUATED`` Play Protect
verdicts are ``UNKNOWN``. Of the apps detected, ``KNOWN_INSTALLED`` is dropped: Google
describes it as apps Play recognises being installed, which is every phone, and scoring
it would mark every honest user. A missing or malformed value says nothing rather
than failing the request.

A pure core: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bastion.device.risk import PlayProtect

__all__ = ["VerdictSignals", "verdict_signals"]

_RECOGNITION = {"PLAY_RECOGNIZED": True, "UNRECOGNIZED_VERSION": False}
_LICENSING = {"LICENSED": True, "UNLICENSED": False}
_PLAY_PROTECT = {
    "NO_ISSUES": PlayProtect.NO_ISSUES,
    "POSSIBLE_RISK": PlayProtect.POSSIBLE_RISK,
    "MEDIUM_RISK": PlayProtect.MEDIUM_RISK,
    "HIGH_RISK": PlayProtect.HIGH_RISK,
}
_BENIGN_APPS = frozenset({"KNOWN_INSTALLED"})


@dataclass(frozen=True)
class VerdictSignals:
    app_recognized: bool | None = None
    licensed: bool | None = None
    play_protect: PlayProtect = PlayProtect.UNKNOWN
    app_access_risk: frozenset[str] = frozenset()


def verdict_signals(summary: Mapping[str, Any] | None) -> VerdictSignals:
    """The risk signals a verdict summary gives (the module docstring's mapping)."""
    if not summary:
        return VerdictSignals()
    apps = summary.get("apps_detected")
    detected = (
        frozenset(a for a in apps if isinstance(a, str)) - _BENIGN_APPS
        if isinstance(apps, list | tuple | frozenset | set)
        else frozenset()
    )
    return VerdictSignals(
        app_recognized=_RECOGNITION.get(_text(summary.get("app_recognition"))),
        licensed=_LICENSING.get(_text(summary.get("licensing"))),
        play_protect=_PLAY_PROTECT.get(_text(summary.get("play_protect")), PlayProtect.UNKNOWN),
        app_access_risk=detected,
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
