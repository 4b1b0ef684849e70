"""Revoking a device revokes its tokens, through the real authorization server: the
access and refresh tokens bound to the device's DPoP key (RFC 9449 §5, §7) stop
working; the admin API lists, shows and revokes devices (RFC 9457 problems for the
rest). The records are those of the App Attest and Play Integrity attestations
(``bastion.device.records``)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.authserver.devices import revoke_device
from bastion.device import anomalies
from bastion.device.records import Device
from bastion.errors import NotFound
from bastion.oauth.clients import Client
from tests.authserver.conftest import (
    APP_REDIRECT,
    ISSUER,
    VERIFIER,
    Server,
    get_code,
    start_server,
)
from tests.authserver.test_accounts import admin_token
from tests.support.dpop import DeviceKey

TOKEN = f"{ISSUER}/token"
USERINFO = f"{ISSUER}/userinfo"
NOW = 1_700_000_000.0


@pytest.fixture
def server(tmp_path: Path, database_url: str, master_key_b64: str) -> Iterator[Server]:
    with start_server(tmp_path, database_url, master_key_b64) as started:
        yield started


def key_id(name: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(name.encode()).digest()).rstrip(b"=").decode()


def device(name: str, key: DeviceKey | None, **changes: Any) -> Device:
    values: dict[str, Any] = {
        "device_id": f"dev-{name}",
        "platform": "ios",
        "client_id": "mobile",
        "level": "device",
        "first_seen": NOW,
        "last_seen": NOW,
        "attested_at": NOW,
        "key_id": key_id(name),
        "public_key": b"\x30\x59" + bytes(89),
        "environment": "production",
        "app_version": "3.2.1",
        "dpop_jkt": None if key is None else key.jkt,
    }
    return Device(**(values | changes))


def add(server: Server, record: Device) -> None:
    server.call(server.runtime.auth.devices.add, record)


def dpop_tokens(server: Server, key: DeviceKey) -> dict[str, Any]:
    """The whole code flow of the native app, its token request with a DPoP proof."""
    code = get_code(server.client)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": APP_REDIRECT,
        "client_id": "mobile",
        "code_verifier": VERIFIER,
    }
    response = server.client.post("/token", data=data, headers={"DPoP": key.proof("POST", TOKEN)})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["token_type"] == "DPoP"
    return body


def userinfo(server: Server, key: DeviceKey, token: str) -> Any:
    proof = key.proof("GET", USERINFO, access_token=token)
    return server.client.get("/userinfo", headers={"authorization": f"DPoP {token}", "DPoP": proof})


def refresh(server: Server, key: DeviceKey, token: str) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "mobile"}
    return server.client.post("/token", data=data, headers={"DPoP": key.proof("POST", TOKEN)})


def test_a_revoked_devices_access_and_refresh_tokens_stop_working(server: Server) -> None:
    """The stolen phone: its DPoP-bound access token is refused at once (denylisted, RFC
    9449 §7.1 protected resource), its refresh token no longer rotates; another
    installation of the same user keeps working."""
    stolen, other = DeviceKey(), DeviceKey()
    add(server, device("stolen", stolen, user_ids=(server.user_id,)))
    add(server, device("other", other))
    tokens, kept = dpop_tokens(server, stolen), dpop_tokens(server, other)
    assert userinfo(server, stolen, tokens["access_token"]).status_code == 200
    hot = server.runtime.hot
    server.call(anomalies.mark, hot, "dev-stolen", "counter_regression")

    done = server.call(revoke_device, server.runtime.auth, "dev-stolen", "stolen", "operator:t")

    assert (done.already_revoked, done.families) == (False, 1)
    assert done.device.revoked
    assert done.device.revoked_reason == "stolen"
    refused = userinfo(server, stolen, tokens["access_token"])
    assert refused.status_code == 401
    assert "invalid_token" in refused.headers["www-authenticate"]
    rotated = refresh(server, stolen, tokens["refresh_token"])
    assert rotated.status_code == 400
    assert rotated.json()["error"] == "invalid_grant"
    assert userinfo(server, other, kept["access_token"]).status_code == 200
    assert refresh(server, other, kept["refresh_token"]).status_code == 200
    assert server.call(anomalies.reason, hot, "dev-stolen") is None
    [event] = server.events("device.revoked")
    assert event["actor"] == "operator:t"
    assert event["target"] == "dev-stolen"
    assert event["details"]["reason"] == "stolen"
    assert event["details"]["families"] == 1
    assert event["details"]["already_revoked"] is False
    [families] = server.events("oauth.family.revoked")
    assert families["details"]["dpop_jkt"] == stolen.jkt
    assert families["policy"] == "device_revoked"


def test_revoking_again_finishes_the_job_and_spares_the_next_holder(server: Server) -> None:
    """A revoked device frees its DPoP key; when a new installation holds it, revoking
    the old record again reaches none of the new one's tokens."""
    key = DeviceKey()
    add(server, device("old", key))
    auth = server.runtime.auth
    first = server.call(revoke_device, auth, "dev-old", "replaced", "operator:t")
    assert not first.already_revoked
    add(server, device("new", key))
    tokens = dpop_tokens(server, key)
    again = server.call(revoke_device, auth, "dev-old", "again", "operator:t")
    assert (again.already_revoked, again.families) == (True, 0)
    assert again.device.revoked_reason == "replaced", "the first reason stays"
    assert userinfo(server, key, tokens["access_token"]).status_code == 200
    with pytest.raises(NotFound):
        server.call(revoke_device, auth, "dev-none", "absent", "operator:t")
    with pytest.raises(NotFound):
        server.call(revoke_device, auth, "d" * 10_000, "absent", "operator:t")


def test_a_client_the_device_registered_is_disabled(server: Server) -> None:
    """A per-installation client (RFC 7591 registration gated by attestation) serves
    that installation only: it is disabled with the device."""
    auth = server.runtime.auth
    registered = Client(
        client_id="install-1",
        client_type="public",
        auth_method="none",
        redirect_uris=("com.example.app:/cb",),
        scopes=frozenset({"openid"}),
        grant_types=frozenset({"authorization_code", "refresh_token"}),
        resources=frozenset(),
        source="registration",
    )
    server.call(auth.clients.store.create, registered, NOW)
    add(server, device("installed", DeviceKey(), registered_client_id="install-1"))
    server.call(revoke_device, auth, "dev-installed", "cloned", "operator:t")
    stored = server.call(auth.clients.store.get, "install-1")
    assert stored is not None
    assert not stored.enabled


# --- the admin API --------------------------------------------------------------------------


def test_the_admin_api_lists_shows_and_revokes_devices(server: Server) -> None:
    client = server.client
    auth = {"authorization": f"Bearer {admin_token(client)}"}
    key = DeviceKey()
    add(server, device("a", key, user_ids=(server.user_id,), last_seen=NOW + 5))
    add(
        server,
        device(
            "b",
            None,
            platform="android",
            key_id=None,
            level="strong",
            verdict={"device_labels": ["MEETS_STRONG_INTEGRITY"], "version_code": 42},
            encryption_key={"kty": "EC", "use": "enc"},
        ),
    )
    tokens = dpop_tokens(server, key)

    listed = client.get("/admin/devices", headers=auth)
    assert listed.status_code == 200, listed.text
    assert [d["device_id"] for d in listed.json()["devices"]] == ["dev-a", "dev-b"]
    mine = client.get("/admin/devices", params={"user_id": server.user_id}, headers=auth).json()
    assert [d["device_id"] for d in mine["devices"]] == ["dev-a"]
    limited = client.get("/admin/devices", params={"limit": "1"}, headers=auth).json()
    assert len(limited["devices"]) == 1

    shown = client.get("/admin/devices/dev-b", headers=auth).json()
    assert shown["verdict"] == {"device_labels": ["MEETS_STRONG_INTEGRITY"], "version_code": 42}
    assert shown["encryption_key"] is True
    assert "public_key" not in shown
    assert "receipt" not in shown
    apple = client.get("/admin/devices/dev-a", headers=auth).json()
    assert (apple["key_id"], apple["dpop_jkt"], apple["users"]) == (
        key_id("a"),
        key.jkt,
        [server.user_id],
    )

    revoked = client.post("/admin/devices/dev-a/revoke", json={"reason": "stolen"}, headers=auth)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json() == {
        "ok": True,
        "device_id": "dev-a",
        "already_revoked": False,
        "families": 1,
    }
    assert userinfo(server, key, tokens["access_token"]).status_code == 401
    [event] = server.events("device.revoked")
    assert event["actor"] == "client:operator-tool"
    live = client.get("/admin/devices", headers=auth).json()["devices"]
    assert [d["device_id"] for d in live] == ["dev-b"]
    every = client.get("/admin/devices", params={"include_revoked": "true"}, headers=auth).json()
    assert {d["device_id"] for d in every["devices"]} == {"dev-a", "dev-b"}
    again = client.post("/admin/devices/dev-a/revoke", json={"reason": "x"}, headers=auth)
    assert again.json()["already_revoked"] is True


def test_the_admin_api_refuses_what_it_should(server: Server) -> None:
    """Deny by default and clear problems (RFC 9457): no token, a user's token, unknown
    devices and actions, and hostile input never reach a 500."""
    client = server.client
    add(server, device("a", DeviceKey()))
    assert client.get("/admin/devices").status_code == 401
    assert client.post("/admin/devices/dev-a/revoke", json={"reason": "r"}).status_code == 401
    assert client.post("/admin/devices/dev-a/wipe").status_code == 401
    user_token = dpop_tokens(server, DeviceKey())["access_token"]
    assert (
        client.get("/admin/devices", headers={"authorization": f"Bearer {user_token}"}).status_code
        == 401
    )
    auth = {"authorization": f"Bearer {admin_token(client)}"}
    for path in ("/admin/devices/dev-none", "/admin/devices/" + "d" * 5000, "/admin/devices/%00"):
        missing = client.get(path, headers=auth)
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
    assert (
        client.post(
            "/admin/devices/dev-none/revoke", json={"reason": "r"}, headers=auth
        ).status_code
        == 404
    )
    assert client.post("/admin/devices/dev-a/wipe", headers=auth).status_code == 404
    for params in (
        {"limit": "0"},
        {"limit": "100000"},
        {"limit": "x"},
        {"include_revoked": "maybe"},
    ):
        bad = client.get("/admin/devices", params=params, headers=auth)
        assert bad.status_code == 400, params
        assert bad.headers["content-type"] == "application/problem+json"
    for hostile in ({"user_id": "u" * 10_000}, {"client_id": "c\x00"}, {"user_id": "' OR 1=1 --"}):
        answer = client.get("/admin/devices", params=hostile, headers=auth)
        assert answer.status_code == 200
        assert answer.json() == {"devices": []}
    for body in ({}, {"reason": ""}, {"reason": "r" * 201}, {"reason": "a\nb"}, {"reason": 7}):
        bad = client.post("/admin/devices/dev-a/revoke", json=body, headers=auth)
        assert bad.status_code == 400, body
        assert bad.json()["errors"] == ["/reason"]
        assert "r" * 201 not in bad.text
    untyped = client.post("/admin/devices/dev-a/revoke", content=b"reason", headers=auth)
    assert untyped.status_code == 415
    still = client.get("/admin/devices/dev-a", headers=auth).json()
    assert still["revoked_at"] is None
