"""The worked example of docs/device-trust.md ("Risk signals and policies") is true: its
configuration, read from the page itself, scores each device it describes as it says."""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bastion.device.policies import settle
from bastion.device.records import Device
from bastion.device.risk import Action, assess
from bastion.device.settings import DeviceSettings, PolicySettings
from bastion.device.signals import Found, RiskRequest, asserted, compose

DOCS = Path(__file__).parents[2] / "docs" / "device-trust.md"
NOW = 1_700_000_000.0
DAY = 86_400.0


def example() -> dict[str, Any]:
    text = DOCS.read_text()
    section = text[text.index("### A worked example") : text.index("## Rolling out")]
    match = re.search(r"```toml\n(.*?)```", section, re.S)
    assert match is not None
    return tomllib.loads(match.group(1))


CONFIG = example()
DEVICE = DeviceSettings.model_validate(CONFIG["device"])
(ROUTE,) = CONFIG["gateway"]["routes"]
PAYMENTS = PolicySettings.model_validate(ROUTE["device"])
STRONG = Device(
    device_id="dev-a",
    platform="android",
    client_id="shop",
    level="strong",
    first_seen=NOW - 90 * DAY,
    last_seen=NOW,
    attested_at=NOW - 3600,
    verdict={
        "app_recognition": "PLAY_RECOGNIZED",
        "licensing": "LICENSED",
        "play_protect": "NO_ISSUES",
    },
    app_version="4.2.0",
    dpop_jkt="a" * 43,
    user_ids=("alice",),
)
IPHONE = replace(STRONG, device_id="dev-i", platform="ios", level="device", verdict=None)
ALICE = RiskRequest(user_id="alice", client_id="shop", jkt="a" * 43, bound=True)


def judged(
    policy: PolicySettings, device: Device | None, *, request: RiskRequest = ALICE, **signs: Any
) -> tuple[int, Action, tuple[str, ...]]:
    found = Found(device)
    signals = compose(request, found, None, NOW, **signs)
    decision = settle(assess(signals, policy.policy()), signals, found, policy)
    return decision.score, decision.enforced, decision.reasons


@pytest.mark.parametrize(
    ("device", "score", "answer"),
    [
        (STRONG, 0, Action.ALLOW),
        (replace(STRONG, level="basic", attested_at=NOW - 10 * DAY), 35, Action.LIMIT),
        (asserted(replace(IPHONE, attested_at=NOW - 30 * DAY), NOW), 10, Action.ALLOW),
        (replace(IPHONE, attested_at=NOW - 30 * DAY), 35, Action.LIMIT),
    ],
    ids=["strong-android", "basic-10-days", "iphone-asserting", "iphone-30-days"],
)
def test_the_payment_route_scores_as_the_example_says(
    device: Device, score: int, answer: Action
) -> None:
    assert judged(PAYMENTS, device)[:2] == (score, answer)


def test_a_new_user_on_the_device_adds_20() -> None:
    score, _, reasons = judged(PAYMENTS, STRONG, request=replace(ALICE, user_id="bob"))
    assert (score, reasons) == (20, ("new_device",))


def test_a_device_never_attested_is_refused_whatever_its_score() -> None:
    _, answer, reasons = judged(PAYMENTS, None)
    assert answer is Action.DENY
    assert reasons[-1] == "attestation_missing"


def test_a_counter_anomaly_stops_refresh_and_the_route_but_only_narrows_issuance() -> None:
    assert DEVICE.refresh is not None
    assert DEVICE.token is not None
    assert judged(DEVICE.refresh, STRONG, anomaly=True)[1] is Action.DENY
    assert judged(PAYMENTS, STRONG, anomaly=True)[1] is Action.DENY
    assert judged(DEVICE.token, STRONG, anomaly=True)[1] is Action.LIMIT
    assert DEVICE.token.limit_scopes == ("openid", "orders:read")
