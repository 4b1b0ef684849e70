"""The ``[device]`` table, the ``device`` table of a declared client, and the ``device``
policy of a gateway route (see docs/device-trust.md and docs/configuration.md#device).

A client says which app it is on each platform (``[oauth.clients.device]``): the Apple
team and bundle ids its App Attest keys must be made for, the Android package and the
signing-certificate digests its Play Integrity verdicts must name. ``[device]`` holds
what is shared: challenge lifetime, trust anchors, Google's decoding API, cohorts, and
the risk policies of sign-in, token issuance and refresh.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bastion.accounts.levels import ACR_MFA, ACR_PHISHING_RESISTANT, rank
from bastion.configtypes import AnchoredPath, Duration, Section
from bastion.device.risk import Action, Policy, policy_problems

NAME = r"^[A-Za-z0-9_.-]{1,64}$"
_TEAM_ID = r"^[A-Z0-9]{10}$"
_BUNDLE_ID = r"^[A-Za-z0-9.-]{1,155}$"
_PACKAGE = r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$"
_HEX_DIGEST = re.compile(r"^[0-9A-Fa-f]{2}(:?[0-9A-Fa-f]{2}){31}$")


def certificate_digest(value: str) -> str:
    """A signing-certificate SHA-256 digest as Play Integrity reports it (base64url, no
    padding), from that form, standard base64 or the hex the Play Console shows."""
    text = value.strip()
    if _HEX_DIGEST.match(text):
        raw = bytes.fromhex(text.replace(":", ""))
    else:
        try:
            padded = text.replace("+", "-").replace("/", "_").rstrip("=")
            raw = base64.urlsafe_b64decode(padded + "=" * (-len(padded) % 4))
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{value!r} is not a SHA-256 digest (hex or base64)") from exc
    if len(raw) != 32:
        raise ValueError(f"{value!r} is not a SHA-256 digest (32 bytes)")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class AppleAppSettings(Section):
    """The iOS app a client's App Attest keys must belong to (App ID = team.bundle)."""

    team_id: str = Field(pattern=_TEAM_ID)
    bundle_ids: tuple[str, ...] = Field(min_length=1)
    # "development" accepts keys of Xcode builds (the appattestdevelop aaguid) instead of
    # App Store and TestFlight ones: a trade-off for testing, so production is the default.
    environment: Literal["production", "development"] = "production"

    @field_validator("bundle_ids")
    @classmethod
    def _bundles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for bundle in value:
            if not re.match(_BUNDLE_ID, bundle):
                raise ValueError(f"{bundle!r} is not a bundle id")
        return value

    def app_ids(self) -> tuple[str, ...]:
        return tuple(f"{self.team_id}.{bundle}" for bundle in self.bundle_ids)


class AndroidAppSettings(Section):
    """The Android app a client's Play Integrity verdicts must name.

    ``decryption_key_file`` and ``verification_key_file`` hold the keys the Play Console
    gives for classic requests when the app manages response encryption itself
    (base64 as downloaded): with both, tokens are verified here; without, tokens are
    decoded by Google's ``decodeIntegrityToken`` (``[device.play_integrity]``).
    """

    package_name: str = Field(pattern=_PACKAGE)
    certificate_digests: tuple[str, ...] = Field(min_length=1)
    min_version_code: int | None = Field(None, ge=0)
    decryption_key_file: AnchoredPath | None = None
    verification_key_file: AnchoredPath | None = None
    # How old a verdict's requestDetails.timestamp may be when it arrives.
    max_verdict_age: Duration = 120.0

    @field_validator("certificate_digests")
    @classmethod
    def _digests(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(certificate_digest(digest) for digest in value)

    @model_validator(mode="after")
    def _both_keys(self) -> AndroidAppSettings:
        if (self.decryption_key_file is None) != (self.verification_key_file is None):
            raise ValueError(
                "decryption_key_file and verification_key_file go together (classic "
                "requests with response encryption managed here)"
            )
        return self

    @property
    def verifies_locally(self) -> bool:
        return self.decryption_key_file is not None


class ClientDeviceSettings(Section):
    """``[oauth.clients.device]``: which app this client is, per platform."""

    apple: AppleAppSettings | None = None
    android: AndroidAppSettings | None = None
    # Versions ever released (CFBundleShortVersionString / versionName): an app that
    # reports another is a repackaged or tampered build. Empty: not checked.
    released_versions: tuple[str, ...] = ()
    # Versions below this (dotted numbers compared numerically) are outdated.
    min_app_version: str | None = Field(None, pattern=r"^\d+(\.\d+)*$")


class CohortSettings(Section):
    """A group a policy applies to: a sticky percentage of users (``bucket(id, salt)``
    in ``bastion.device.cohorts``), listed clients, or listed app versions; a request is
    in the cohort when any given criterion holds."""

    percent: float | None = Field(None, ge=0, le=100)
    # Changing the salt reshuffles who is in; widening ``percent`` keeps everyone in.
    salt: str = ""
    clients: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _something(self) -> CohortSettings:
        if self.percent is None and not self.clients and not self.versions:
            raise ValueError("a cohort needs percent, clients or versions")
        if self.percent is not None and not self.salt:
            raise ValueError("a percentage cohort needs a salt (its own, so cohorts differ)")
        return self


def _pairs(value: object) -> object:
    if isinstance(value, list):
        return tuple(tuple(pair) if isinstance(pair, list) else pair for pair in value)
    return value


class PolicySettings(Section):
    """The risk policy of one action (``bastion.device.risk.Policy``), where it applies
    and what the action demands of the device."""

    mode: Literal["enforce", "audit"] = "enforce"
    outage: Literal["allow", "limit", "step_up", "deny"] = "step_up"
    limit_at: int = 30
    step_up_at: int = 60
    deny_at: int = 100
    attestation: dict[str, int] = Field(
        default_factory=lambda: {"none": 40, "basic": 25, "device": 10}
    )
    attestation_age: tuple[tuple[int, int], ...] = ((7 * 86400, 10), (30 * 86400, 25))
    app_recognition: dict[str, int] = Field(default_factory=lambda: {"unrecognized": 60})
    licensing: dict[str, int] = Field(default_factory=lambda: {"unlicensed": 30})
    app_access_risk: dict[str, int] = Field(default_factory=lambda: {"default": 15})
    play_protect: dict[str, int] = Field(
        default_factory=lambda: {
            "unknown": 0,
            "possible_risk": 10,
            "medium_risk": 30,
            "high_risk": 60,
        }
    )
    not_dpop_bound: int = 10
    app_outdated: int = 30
    app_unreleased: int = 60
    new_device: int = 20
    counter_anomaly: int = 100
    impossible_velocity: int = 60
    failed_sign_ins: tuple[tuple[int, int], ...] = ((3, 10), (10, 40))
    rate_limited: tuple[tuple[int, int], ...] = ((1, 10), (5, 30))
    detectors: dict[str, int] = Field(default_factory=lambda: {"default": 30})
    # What a LIMIT answer keeps: token issuance and refresh grant only these of the
    # scopes asked for; a gateway route admits only tokens holding none but these.
    limit_scopes: tuple[str, ...] = ("openid",)
    # The sign-in level a STEP_UP answer demands (at sign-in: a second factor; on a
    # gateway route: the RFC 9470 challenge's acr_values).
    step_up_acr: str = ACR_MFA
    # Only requests in this cohort ([device.cohorts.NAME]) are judged; others pass as if
    # no policy were set. Unset: everyone.
    cohort: str | None = Field(None, pattern=NAME)
    # A request from a device without a verified attestation is refused (reason
    # "attestation_missing"), whatever its score.
    require_attestation: bool = False
    # Every request carries a fresh App Attest assertion (or Play Integrity token) over
    # the request (the Device-Assertion header).
    require_assertion: bool = False

    _pairs_before = field_validator(
        "attestation_age", "failed_sign_ins", "rate_limited", mode="before"
    )(_pairs)

    @field_validator("limit_scopes", mode="before")
    @classmethod
    def _scope_list(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _valid(self) -> PolicySettings:
        if rank(self.step_up_acr) < rank(ACR_MFA):
            raise ValueError(
                f"step_up_acr: {self.step_up_acr!r} is not a level above password "
                f"({ACR_MFA!r} or {ACR_PHISHING_RESISTANT!r})"
            )
        problems = policy_problems(self.policy())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def policy(self) -> Policy:
        return Policy(
            mode=self.mode,
            outage=Action[self.outage.upper()],
            limit_at=self.limit_at,
            step_up_at=self.step_up_at,
            deny_at=self.deny_at,
            attestation=dict(self.attestation),
            attestation_age=self.attestation_age,
            app_recognition=dict(self.app_recognition),
            licensing=dict(self.licensing),
            app_access_risk=dict(self.app_access_risk),
            play_protect=dict(self.play_protect),
            not_dpop_bound=self.not_dpop_bound,
            app_outdated=self.app_outdated,
            app_unreleased=self.app_unreleased,
            new_device=self.new_device,
            counter_anomaly=self.counter_anomaly,
            impossible_velocity=self.impossible_velocity,
            failed_sign_ins=self.failed_sign_ins,
            rate_limited=self.rate_limited,
            detectors=dict(self.detectors),
        )


class PlayIntegrityApiSettings(Section):
    """Google's ``decodeIntegrityToken`` for Standard requests (and classic ones whose
    response encryption Google manages). The service account's JSON key file is read
    at start; ``endpoint`` is Google's unless a test points it at a local fake."""

    service_account_file: AnchoredPath | None = None
    endpoint: str = "https://playintegrity.googleapis.com"
    token_uri: str | None = None  # default: the key file's token_uri
    timeout: Duration = 5.0


class DeviceSettings(Section):
    """``[device]``: what every client's device checks share."""

    challenge_lifetime: Duration = Field(300.0, gt=0, le=300.0)
    # Apple's App Attestation Root CA ships with Bastion; a file here replaces it.
    apple_root_file: AnchoredPath | None = None
    play_integrity: PlayIntegrityApiSettings = PlayIntegrityApiSettings()
    cohorts: dict[str, CohortSettings] = Field(default_factory=dict)
    # The impossible-velocity signal: a user seen from another source network (/24 for
    # IPv4, /48 for IPv6) within this many seconds of the last request. A heuristic
    # without geolocation, and phones hop between Wi-Fi and mobile data: 0 (the
    # default) turns it off (docs/device-trust.md#risk-signals-and-policies).
    velocity_window: Duration = Field(0.0, ge=0, le=86_400.0)
    # Risk policies of Bastion's own actions; unset: not judged.
    sign_in: PolicySettings | None = None
    token: PolicySettings | None = None
    refresh: PolicySettings | None = None
    # RFC 7591 registration with a verified attestation in place of an initial access
    # token (docs/device-trust.md#registration).
    attested_registration: bool = False

    @model_validator(mode="after")
    def _known_cohorts(self) -> DeviceSettings:
        for name in ("sign_in", "token", "refresh"):
            policy: PolicySettings | None = getattr(self, name)
            cohort = None if policy is None else policy.cohort
            if cohort is not None and cohort not in self.cohorts:
                raise ValueError(f"{name}.cohort: no cohort {cohort!r}")
        if self.sign_in is not None and (
            self.sign_in.require_attestation or self.sign_in.require_assertion
        ):
            # The sign-in page runs in the system browser, which holds no device key:
            # the device it names (dpop_jkt) is a claim, so the demand could never be
            # met honestly. The code exchange proves the key (RFC 9449 §10).
            attestation = self.sign_in.require_attestation
            demand = "require_attestation" if attestation else "require_assertion"
            raise ValueError(
                f"sign_in.{demand} cannot be met: a sign-in in the browser cannot prove a "
                f"device; set [device.token].{demand} instead, where the DPoP proof of the "
                "code exchange proves the device's key"
            )
        return self
