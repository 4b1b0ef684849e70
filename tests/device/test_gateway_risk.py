"""Device risk on gateway routes: allow, limit, step-up (RFC 9470) and deny answers for
the device a DPoP-bound token's key belongs to; audit mode against enforce mode for the
same request; a 10 % cohort; the store going away. Device records are written through
the SQL device store, on SQLite with in-memory hot state and on PostgreSQL with Redis."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bastion.accounts.levels import ACR_MFA, ACR_PASSWORD
from bastion.clock import FixedClock
from bastion.device import anomalies, cohorts
from bastion.device.records import Device
from bastion.device.signals import FRESH_FOR
from bastion.store.sql.devices import SqlDeviceStore
from tests.gateway.conftest import GatewayHarness, gateway_app
from tests.support.dpop import DeviceKey
from tests.support.inprocess import InProcess
from tests.support.recorder import Recorder
from tests.support.services import unique_name
from tests.support.tcpproxy import TcpProxy, via

ISSUER = "http://127.0.0.1:8000"
CONFIG = """
issuer = "http://127.0.0.1:8000"
[hot_state]
key_prefix = "{prefix}:"
[device.cohorts.ten]
percent = 10
salt = "orders-rollout"
[[gateway.upstreams]]
name = "api"
url = "{url}"
[[gateway.routes]]
methods = ["GET"]
path = "/orders"
upstream = "api"
auth = "bastion"
device = {{}}
[[gateway.routes]]
methods = ["GET"]
path = "/audited"
upstream = "api"
upstream_path = "/orders"
auth = "bastion"
device = {{ mode = "audit" }}
[[gateway.routes]]
methods = ["GET"]
path = "/attested"
upstream = "api"
upstream_path = "/orders"
auth = "bastion"
device = {{ require_attestation = true, limit_at = 1000, step_up_at = 1000, deny_at = 1000 }}
[[gateway.routes]]
methods = ["GET"]
path = "/limited"
upstream = "api"
upstream_path = "/orders"
auth = "bastion"
device = {{ limit_at = 30, step_up_at = 500, deny_at = 600, limit_scopes = ["orders:read"] }}
[[gateway.routes]]
methods = ["GET"]
path = "/rollout"
upstream = "api"
upstream_path = "/orders"
auth = "bastion"
device = {{ cohort = "ten", require_attestation = true }}
[[gateway.routes]]
methods = ["GET"]
path = "/plain"
upstream = "api"
upstream_path = "/orders"
auth = "bastion"
"""


def strong(key: DeviceKey, device_id: str, now: float, **changes: Any) -> Device:
    device = Device(
        device_id=device_id,
        platform="android",
        client_id="mobile",
        level="strong",
        first_seen=now,
        last_seen=now,
        attested_at=now,
        verdict={
            "app_recognition": "PLAY_RECOGNIZED",
            "licensing": "LICENSED",
            "play_protect": "NO_ISSUES",
            "apps_detected": [],
        },
        app_version="4.2.0",
        dpop_jkt=key.jkt,
        user_ids=("alice",),
    )
    return replace(device, **changes)


@pytest.fixture(params=["sqlite+memory", "postgres+redis"])
def stores(request: pytest.FixtureRequest, environ: dict[str, str]) -> dict[str, str]:
    if request.param == "sqlite+memory":
        return environ
    return {
        **environ,
        "BASTION_DATABASE_URL": request.getfixturevalue("postgres_url"),
        "BASTION_REDIS_URL": request.getfixturevalue("redis_url"),
    }


def start(
    tmp_path: Path, env: dict[str, str], now: FixedClock, **options: Any
) -> Iterator[GatewayHarness]:
    upstreams = InProcess()
    body = CONFIG.format(url=upstreams.serve(Recorder()), prefix=unique_name("risk"))
    with gateway_app(tmp_path, body, env, clock=now, transport=upstreams, **options) as gw:
        yield gw


@pytest.fixture
def gw(tmp_path: Path, stores: dict[str, str], now: FixedClock) -> Iterator[GatewayHarness]:
    yield from start(tmp_path, stores, now)


def add(gw: GatewayHarness, device: Device) -> None:
    gw.call(SqlDeviceStore(gw.runtime.database).add, device)


def get(
    gw: GatewayHarness,
    path: str,
    key: DeviceKey,
    now: FixedClock,
    *,
    subject: str = "alice",
    **mint: Any,
) -> Any:
    token = gw.mint(subject, jkt=key.jkt, **mint)
    proof = key.proof("GET", f"{ISSUER}/api{path}", access_token=token, iat=now.now())
    return gw.client.get(f"/api{path}", headers={"authorization": f"DPoP {token}", "DPoP": proof})


def risk_events(gw: GatewayHarness) -> list[dict[str, Any]]:
    return [e["details"] | {"policy": e["policy"]} for e in gw.events("device.risk")]


def test_a_strong_device_is_allowed(gw: GatewayHarness, now: FixedClock) -> None:
    key = DeviceKey()
    add(gw, strong(key, "dev-1", now.now()))
    answer = get(gw, "/orders", key, now)
    assert answer.status_code == 200, answer.text
    (event,) = risk_events(gw)
    assert event["policy"] == "route:GET /orders"
    assert (event["decided"], event["enforced"], event["reasons"]) == ("allow", "allow", [])


def test_an_unknown_device_is_asked_to_step_up_per_rfc_9470(
    gw: GatewayHarness, now: FixedClock
) -> None:
    # RFC 9470 §3: 401 with error="insufficient_user_authentication" and the acr to reach.
    answer = get(gw, "/orders", DeviceKey(), now, acr=ACR_PASSWORD)
    assert answer.status_code == 401, answer.text
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="insufficient_user_authentication"')
    assert f'acr_values="{ACR_MFA}"' in challenge
    assert answer.headers["content-type"] == "application/problem+json"
    (event,) = risk_events(gw)
    assert event["enforced"] == "step_up"
    assert event["reasons"] == ["attestation", "attestation_age", "not_dpop_bound"]


def test_a_token_that_already_stepped_up_passes(gw: GatewayHarness, now: FixedClock) -> None:
    # Asking again would loop: the app would sign in with MFA and be asked again.
    answer = get(gw, "/orders", DeviceKey(), now, acr=ACR_MFA, auth_time=now.now())
    assert answer.status_code == 200, answer.text


def test_a_cloned_key_with_a_counter_anomaly_is_denied(gw: GatewayHarness, now: FixedClock) -> None:
    key = DeviceKey()
    add(gw, strong(key, "dev-2", now.now()))
    gw.call(anomalies.mark, gw.runtime.hot, "dev-2", "counter_regression")
    answer = get(gw, "/orders", key, now, acr=ACR_MFA)
    assert answer.status_code == 403, answer.text
    assert answer.json()["type"] == "urn:bastion:problem:forbidden"
    assert "counter" not in answer.text  # the reason is for the audit trail only
    (event,) = risk_events(gw)
    assert (event["enforced"], event["reasons"]) == ("deny", ["counter_anomaly"])
    (refused,) = gw.events("gateway.request.refused")
    assert refused["details"]["reason"] == "device_denied"


def test_audit_mode_decides_the_same_and_enforces_nothing(
    gw: GatewayHarness, now: FixedClock
) -> None:
    key = DeviceKey()  # no device record: enforce mode steps up
    enforced = get(gw, "/orders", key, now)
    audited = get(gw, "/audited", key, now)
    assert enforced.status_code == 401
    assert audited.status_code == 200, audited.text
    first, second = risk_events(gw)
    assert (first["mode"], first["decided"], first["enforced"]) == ("enforce", "step_up", "step_up")
    assert (second["mode"], second["decided"], second["enforced"]) == ("audit", "step_up", "allow")
    assert first["score"] == second["score"]
    assert first["signals"] == second["signals"]


def test_require_attestation_refuses_a_missing_or_revoked_device(
    gw: GatewayHarness, now: FixedClock
) -> None:
    key = DeviceKey()
    assert get(gw, "/attested", key, now).status_code == 403
    add(gw, strong(key, "dev-3", now.now()))
    assert get(gw, "/attested", key, now).status_code == 200
    gw.call(SqlDeviceStore(gw.runtime.database).revoke, "dev-3", now.now(), "lost")
    now.advance(FRESH_FOR + 1)  # a record is used unread for a few seconds
    assert get(gw, "/attested", key, now).status_code == 403
    reasons = [e["reasons"] for e in risk_events(gw)]
    assert reasons[0][-1] == "attestation_missing"
    assert reasons[1] == []
    assert reasons[2][-2:] == ["device_revoked", "attestation_missing"]


def test_limit_admits_only_a_token_narrowed_to_the_limit_scopes(
    gw: GatewayHarness, now: FixedClock
) -> None:
    key = DeviceKey()  # no device: 75 points, LIMIT under this route's thresholds
    narrow = get(gw, "/limited", key, now, scope=("orders:read",))
    assert narrow.status_code == 200, narrow.text
    wide = get(gw, "/limited", key, now, scope=("orders:read", "orders:write"))
    assert wide.status_code == 403
    assert 'error="insufficient_scope"' in wide.headers["www-authenticate"]
    assert 'scope="orders:read"' in wide.headers["www-authenticate"]


def test_routes_without_a_device_table_are_not_judged(gw: GatewayHarness, now: FixedClock) -> None:
    assert get(gw, "/plain", DeviceKey(), now).status_code == 200
    assert risk_events(gw) == []


def test_a_ten_percent_rollout_judges_a_tenth_of_users_the_same_every_time(
    tmp_path: Path, environ: dict[str, str], now: FixedClock
) -> None:
    # A route that refuses everyone without an attested device, enabled for a sticky
    # 10 % cohort: exactly the users whose bucket is under 1000 are refused, again on
    # a second pass.
    users = [f"user-{n}" for n in range(300)]
    expected = {u for u in users if cohorts.bucket(u, "orders-rollout") < 1000}
    with gateway_app(
        tmp_path,
        CONFIG.format(url=(up := InProcess()).serve(Recorder()), prefix=unique_name("risk")),
        environ,
        clock=now,
        transport=up,
    ) as gw:
        key = DeviceKey()
        for _ in range(2):
            refused = {
                u for u in users if get(gw, "/rollout", key, now, subject=u).status_code == 403
            }
            assert refused == expected
        assert 15 <= len(expected) <= 45
        assert len(gw.events("device.risk")) == 2 * len(expected)


def test_a_device_store_outage_steps_up_and_never_answers_500(
    tmp_path: Path,
    proxies: tuple[TcpProxy, TcpProxy],
    postgres_url: str,
    redis_url: str,
    environ: dict[str, str],
    now: FixedClock,
) -> None:
    database, hot = proxies
    env = {
        **environ,
        "BASTION_DATABASE_URL": via(postgres_url, database),
        "BASTION_REDIS_URL": via(redis_url, hot),
    }
    for gw in start(tmp_path, env, now, raise_server_exceptions=False):
        key = DeviceKey()
        add(gw, strong(key, "dev-4", now.now()))
        assert get(gw, "/orders", key, now).status_code == 200
        other = DeviceKey()
        # Tokens are minted (and indexed in the database) before it goes away.
        tokens = [(k, gw.mint("alice", jkt=k.jkt, acr=ACR_PASSWORD)) for k in (key, other)]
        database.stop()
        now.advance(FRESH_FOR + 1)
        # The device records cannot be read: the policy's outage fallback (step-up)
        # answers, for a device seen before (its last known record) and one never seen.
        for device_key, token in tokens:
            proof = device_key.proof(
                "GET", f"{ISSUER}/api/orders", access_token=token, iat=now.now()
            )
            answer = gw.client.get(
                "/api/orders", headers={"authorization": f"DPoP {token}", "DPoP": proof}
            )
            assert answer.status_code == 401, answer.text
            assert "insufficient_user_authentication" in answer.headers["www-authenticate"]
        last = risk_events(gw)[-2:]
        assert all(e["reasons"][-1] == "attestation_unavailable" for e in last)
        assert last[0]["signals"]["attestation"] == "strong"  # the last known record
        database.start()
