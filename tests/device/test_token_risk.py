"""Device risk at the authorization server: token issuance narrows scopes under
``limit`` (RFC 6749 §5.1: the answer's ``scope`` says so), step-up and deny are
``invalid_grant`` (§5.2), refresh is refused for a device with a counter anomaly without
using the refresh token up, and sign-in asks for a second factor or refuses. The device
is the one the request's DPoP key is bound to (RFC 9449 §5; §10 for ``dpop_jkt``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bastion.authserver.browser import Browser
from bastion.device import anomalies
from bastion.device.records import Device
from bastion.store.sql.devices import SqlDeviceStore
from tests.authserver.conftest import (
    PASSWORD,
    Server,
    authorize_params,
    csrf_of,
    get_code,
    query_of,
    sign_in,
    start_server,
)
from tests.dpop.test_authorization_server import (
    TOKEN,
    claims_of,
    code_request,
    dpop_tokens,
    post_token,
    refresh_request,
)
from tests.support.dpop import DeviceKey

LIMITING = """
[device.token]
limit_at = 30
step_up_at = 500
deny_at = 600
limit_scopes = ["openid", "orders:read"]
[device.refresh]
"""


@contextmanager
def risky_server(
    tmp_path: Path, database_url: str, master_key_b64: str, tables: str
) -> Iterator[Server]:
    # The tables follow [oauth]'s own lines; the [[oauth.clients]] headers after them
    # name their full path, so they still belong to [oauth].
    with start_server(tmp_path, database_url, master_key_b64, oauth=tables) as started:
        yield started


@pytest.fixture
def server(tmp_path: Path, database_url: str, master_key_b64: str) -> Iterator[Server]:
    with risky_server(tmp_path, database_url, master_key_b64, LIMITING) as started:
        yield started


def attested(
    server: Server, key: DeviceKey, device_id: str, users: tuple[str, ...] | None = None
) -> Device:
    now = server.runtime.clock.now()
    device = Device(
        device_id=device_id,
        platform="ios",
        client_id="mobile",
        level="device",
        first_seen=now,
        last_seen=now,
        attested_at=now,
        app_version="1.0",
        dpop_jkt=key.jkt,
        user_ids=(server.user_id,) if users is None else users,
    )
    server.call(SqlDeviceStore(server.runtime.database).add, device)
    return device


def risk_events(server: Server) -> list[dict[str, Any]]:
    return [e["details"] | {"policy": e["policy"]} for e in server.events("device.risk")]


def test_limit_narrows_the_scopes_of_an_unattested_device(server: Server) -> None:
    key = DeviceKey()  # no device record: 75 points, LIMIT under [device.token]
    body = dpop_tokens(server, key)
    assert body["scope"] == "openid orders:read"
    assert claims_of(body["access_token"])["scope"] == "openid orders:read"
    assert "id_token" in body
    (event,) = risk_events(server)
    assert (event["policy"], event["enforced"]) == ("token", "limit")


def test_an_attested_device_gets_every_scope_granted(server: Server) -> None:
    key = DeviceKey()
    attested(server, key, "dev-t1")
    body = dpop_tokens(server, key)
    assert body["scope"] == "openid profile orders:read"
    # The refresh grant keeps the whole grant, judged again at each refresh.
    refreshed = post_token(server, refresh_request(body["refresh_token"]), key.proof("POST", TOKEN))
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["scope"] == "openid profile orders:read"
    assert [e["policy"] for e in risk_events(server)] == ["token", "refresh"]


def test_refresh_is_refused_for_a_device_with_a_counter_anomaly(server: Server) -> None:
    key = DeviceKey()
    device = attested(server, key, "dev-t2")
    body = dpop_tokens(server, key)
    server.call(anomalies.mark, server.runtime.hot, device.device_id, "counter_regression")
    refused = post_token(server, refresh_request(body["refresh_token"]), key.proof("POST", TOKEN))
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert "refresh_token" not in refused.json()
    event = risk_events(server)[-1]
    assert (event["policy"], event["enforced"]) == ("refresh", "deny")
    assert "counter_anomaly" in event["reasons"]
    # Judged before the rotation: once the operator clears the mark, the same refresh
    # token still works (it was not used up, nor its family revoked).
    server.call(anomalies.clear, server.runtime.hot, device.device_id)
    again = post_token(server, refresh_request(body["refresh_token"]), key.proof("POST", TOKEN))
    assert again.status_code == 200, again.text
    assert not server.events("oauth.refresh.reuse_detected")


def test_step_up_at_code_exchange_refuses_and_revokes_what_the_code_issued(
    tmp_path: Path, database_url: str, master_key_b64: str
) -> None:
    with risky_server(tmp_path, database_url, master_key_b64, "[device.token]\n") as server:
        key = DeviceKey()  # no device: 75 points, STEP_UP under the defaults
        code = get_code(server.client)
        refused = post_token(server, code_request(code), key.proof("POST", TOKEN))
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_grant"
        assert "sign in again" in refused.json()["error_description"]
        # The code was redeemed to learn its user: it cannot be tried again.
        retry = post_token(server, code_request(code), key.proof("POST", TOKEN))
        assert retry.status_code == 400
        assert risk_events(server)[0]["enforced"] == "step_up"


def test_sign_in_step_up_demands_a_second_factor(
    tmp_path: Path, database_url: str, master_key_b64: str
) -> None:
    # [device.sign_in] steps up an unknown device: a password alone no longer signs in,
    # and alice, who has no second factor, cannot reach the level; the app is told
    # (OpenID Connect unmet_authentication_requirements).
    with risky_server(tmp_path, database_url, master_key_b64, "[device.sign_in]\n") as server:
        key = DeviceKey()
        response = server.client.get("/authorize", params=authorize_params(dpop_jkt=key.jkt))
        location = sign_in(server.client, response.headers["location"])
        assert query_of(location)["error"] == "unmet_authentication_requirements"
        (event,) = risk_events(server)
        assert (event["policy"], event["enforced"]) == ("sign_in", "step_up")


def test_a_named_device_cannot_lend_its_standing_to_a_sign_in(
    tmp_path: Path, database_url: str, master_key_b64: str
) -> None:
    # dpop_jkt is a claim the browser cannot prove: naming an attested device's key
    # does not spare the second factor.
    with risky_server(tmp_path, database_url, master_key_b64, "[device.sign_in]\n") as server:
        key = DeviceKey()
        attested(server, key, "dev-t3")
        response = server.client.get("/authorize", params=authorize_params(dpop_jkt=key.jkt))
        location = sign_in(server.client, response.headers["location"])
        assert query_of(location)["error"] == "unmet_authentication_requirements"


def test_sign_in_deny_is_a_page_message_for_the_owners_browser_only(
    tmp_path: Path, database_url: str, master_key_b64: str
) -> None:
    tables = "[device.sign_in]\ndeny_at = 60\nstep_up_at = 60\nlimit_at = 60\n"
    with risky_server(tmp_path, database_url, master_key_b64, tables) as server:

        def post_password() -> Any:
            response = server.client.get("/authorize", params=authorize_params())
            login = response.headers["location"]
            page = server.client.get(login)
            return server.client.post(
                "/login",
                data={
                    "interaction": query_of(login)["interaction"],
                    "csrf": csrf_of(page.text),
                    "username": "alice",
                    "password": PASSWORD,
                },
            )

        # A browser that never signed in as alice learns nothing: the refusal reads as a
        # wrong password, so a guessed password is not confirmed.
        guessed = post_password()
        assert guessed.status_code == 400
        assert "incorrect" in guessed.text
        # Alice's own browser (its device cookie) is told plainly, on the page; the app
        # is not redirected to.
        browser = Browser(server.runtime.auth)
        server.client.cookies.set(browser.cookies.device, browser.device_cookie("alice"))
        refused = post_password()
        assert refused.status_code == 403
        assert "not allowed" in refused.text
        assert "location" not in refused.headers
        refusals = [e["details"]["reason"] for e in server.events("login.refused")]
        assert refusals == ["device_denied", "device_denied"]


def test_in_audit_mode_a_denying_sign_in_policy_lets_the_sign_in_through(
    tmp_path: Path, database_url: str, master_key_b64: str
) -> None:
    tables = '[device.sign_in]\nmode = "audit"\ndeny_at = 60\nstep_up_at = 60\nlimit_at = 60\n'
    with risky_server(tmp_path, database_url, master_key_b64, tables) as server:
        response = server.client.get("/authorize", params=authorize_params())
        location = sign_in(server.client, response.headers["location"])
        assert not location.startswith("/login")
        (event,) = risk_events(server)
        assert (event["decided"], event["enforced"]) == ("deny", "allow")


def test_a_user_is_new_on_a_device_until_tokens_are_issued_to_it_there(server: Server) -> None:
    key = DeviceKey()
    attested(server, key, "dev-t4", users=())
    body = dpop_tokens(server, key)
    refreshed = post_token(server, refresh_request(body["refresh_token"]), key.proof("POST", TOKEN))
    assert refreshed.status_code == 200, refreshed.text
    first, second = (e["signals"]["new_device"] for e in risk_events(server))
    assert (first, second) == (True, False)
    stored = server.call(SqlDeviceStore(server.runtime.database).get, "dev-t4")
    assert stored.user_ids == (server.user_id,)


def test_the_token_policy_judges_the_key_that_redeems_the_code(
    tmp_path: Path, database_url: str, master_key_b64: str
) -> None:
    """The sign-in page cannot prove a device (the ``dpop_jkt`` it names is a claim);
    the code exchange can: its DPoP proof (RFC 9449 §5, §10) proves the key, so
    ``[device.token].require_attestation`` is where an attested device is demanded.
    Naming an attested device's thumbprint at sign-in, then redeeming a code with an
    unattested key, gets no tokens."""
    tables = "[device.token]\nrequire_attestation = true\n"
    with risky_server(tmp_path, database_url, master_key_b64, tables) as server:
        genuine, script = DeviceKey(), DeviceKey()
        attested(server, genuine, "dev-t5")
        # The named device's key: the code is bound to it (RFC 9449 §10).
        named = get_code(server.client, dpop_jkt=genuine.jkt)
        stolen = post_token(server, code_request(named), script.proof("POST", TOKEN))
        assert stolen.status_code == 400
        # A code not bound to any key, redeemed with the script's own key.
        code = get_code(server.client)
        refused = post_token(server, code_request(code), script.proof("POST", TOKEN))
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "invalid_grant"
        event = risk_events(server)[-1]
        assert (event["policy"], event["enforced"]) == ("token", "deny")
        assert "attestation_missing" in event["reasons"]
        # The attested device's own key redeems a code.
        body = dpop_tokens(server, genuine)
        assert body["token_type"] == "DPoP"
