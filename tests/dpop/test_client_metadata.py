"""``dpop_bound_access_tokens`` (RFC 9449 §5.2) and the nonce switch, set from the CLI and
through dynamic registration, survive the store and are honoured."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from tests.authserver.test_registration import NATIVE, register, statement
from tests.cli.test_admin_commands import data, run


def test_cli_sets_and_clears_the_switches(config: Path, master_key_b64: str) -> None:
    c = ["-c", str(config), "--json"]
    created = data(
        run(
            [
                "clients",
                "create",
                "ios-app",
                "--redirect-uri",
                "com.example.ios:/cb",
                "--dpop-bound",
                "--require-dpop-nonce",
                *c,
            ],
            master_key_b64,
        )
    )
    assert created["dpop_bound_access_tokens"] is True
    assert created["require_dpop_nonce"] is True
    shown = data(run(["clients", "show", "ios-app", *c], master_key_b64))
    assert shown["dpop_bound_access_tokens"] is True
    updated = data(run(["clients", "update", "ios-app", "--no-dpop-bound", *c], master_key_b64))
    assert updated["dpop_bound_access_tokens"] is False
    assert updated["require_dpop_nonce"] is True


def test_registration_takes_the_member(registrar: TestClient) -> None:
    answer = register(registrar, {**NATIVE, "dpop_bound_access_tokens": True})
    assert answer.status_code == 201, answer.text
    assert answer.json()["dpop_bound_access_tokens"] is True
    plain = register(registrar, NATIVE)
    assert plain.json()["dpop_bound_access_tokens"] is False


def test_registration_refuses_a_non_boolean(registrar: TestClient) -> None:
    answer = register(registrar, {**NATIVE, "dpop_bound_access_tokens": "yes"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_client_metadata"


def test_a_statement_that_requires_dpop_cannot_be_undone_by_the_app(
    registrar: TestClient,
) -> None:
    # RFC 7591 §2.3: the operator's statement wins over the app's own metadata.
    signed = statement(dpop_bound_access_tokens=True)
    answer = register(registrar, {**NATIVE, "software_statement": signed})
    assert answer.status_code == 201, answer.text
    registered = answer.json()
    assert registered["dpop_bound_access_tokens"] is True
    update = registrar.put(
        registered["registration_client_uri"].removeprefix("http://127.0.0.1:8000"),
        json={**NATIVE, "client_id": registered["client_id"], "dpop_bound_access_tokens": False},
        headers={"authorization": f"Bearer {registered['registration_access_token']}"},
    )
    assert update.status_code == 400
    assert update.json()["error"] == "invalid_client_metadata"


def test_the_app_cannot_switch_dpop_off_by_leaving_it_out(registrar: TestClient) -> None:
    # RFC 7592 §2.2 is a full replacement, but the registration token lives on the
    # device: dropping the member must not drop the protection.
    registered = register(registrar, {**NATIVE, "dpop_bound_access_tokens": True}).json()
    update = registrar.put(
        registered["registration_client_uri"].removeprefix("http://127.0.0.1:8000"),
        json={**NATIVE, "client_id": registered["client_id"]},
        headers={"authorization": f"Bearer {registered['registration_access_token']}"},
    )
    assert update.status_code == 200, update.text
    assert update.json()["dpop_bound_access_tokens"] is True
