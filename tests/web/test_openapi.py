"""The OpenAPI 3.1 documents of the admin API and of dynamic registration, held to the
served app: schemathesis generates valid and invalid requests from each document and
sends them to a running server, which must never answer 5xx and must answer every one
as documented (status, media type, headers, body schema). The success paths that random
ids cannot reach are walked by hand and checked against the same documents."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from starlette.testclient import TestClient

from bastion import wiring
from bastion.config import Settings, encode_master_key, load_settings
from bastion.device.records import Device
from bastion.oauth.clients import hash_secret
from bastion.store.sql.devices import SqlDeviceStore
from bastion.web.accounts.admin_schema import ADMIN_API
from bastion.web.app import build_app
from bastion.web.oauth.registration_schema import REGISTRATION_API
from bastion.web.openapi import document
from tests.conftest import write_config
from tests.support import schema
from tests.support.services import free_port
from tests.support.upstream import serve_in_thread

ADMIN_SECRET = "admin-secret-0123456789abcdefghijklmnopqrstuvwx"
INITIAL_TOKEN = "initial-access-token-for-tests-0123456789"
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
NATIVE = {"redirect_uris": ["com.example.install:/cb"], "client_name": "Install"}


def config(issuer: str) -> str:
    return f"""
issuer = "{issuer}"
[oauth.registration]
enabled = true
[[oauth.clients]]
client_id = "operator-tool"
type = "confidential"
grant_types = ["client_credentials"]
scopes = ["bastion:admin"]
resources = ["{issuer}/admin"]
secret_sha256 = "{hash_secret(ADMIN_SECRET)}"
# Enough registrations per address for the fuzzing to reach past the rate limit.
[[guards.endpoints.registration]]
name = "registration"
rate = 100000
burst = 100000
"""


@dataclass(frozen=True)
class Served:
    url: str
    issuer: str
    admin: dict[str, str]  # headers with an admin token
    settings: Settings


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Bastion on a real socket, with registration on and an admin client."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    directory = tmp_path_factory.mktemp("openapi")
    loaded = load_settings(
        write_config(directory, config(issuer)),
        {
            "BASTION_MASTER_KEY": encode_master_key(secrets.token_bytes(32)),
            "BASTION_REGISTRATION_TOKEN": INITIAL_TOKEN,
        },
    )
    asyncio.run(schema.migrate(loaded))
    app = build_app(loaded, lambda: wiring.open_runtime(loaded))
    with serve_in_thread(app, port, lifespan="on") as url:
        token = httpx.post(
            f"{url}/token",
            data={
                "grant_type": "client_credentials",
                "scope": "bastion:admin",
                "resource": f"{issuer}/admin",
            },
            auth=("operator-tool", ADMIN_SECRET),
        )
        assert token.status_code == 200, token.text
        admin = {"authorization": f"Bearer {token.json()['access_token']}"}
        yield Served(url, issuer, admin, loaded)


# The documents as the app makes them; test_the_documents_are_served checks that the
# served ones are these, so testing these tests what clients read.
admin_api = schemathesis.openapi.from_dict(document(ADMIN_API, "http://127.0.0.1"))
registration_api = schemathesis.openapi.from_dict(document(REGISTRATION_API, "http://127.0.0.1"))
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def test_the_documents_are_served(served: Served) -> None:
    for path, api in (("admin", ADMIN_API), ("registration", REGISTRATION_API)):
        answer = httpx.get(f"{served.url}/openapi/{path}.json")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == document(api, served.issuer)
        assert answer.json()["openapi"].startswith("3.1.")


@admin_api.parametrize()
@FUZZ
def test_the_admin_api_answers_as_documented(case: Any, served: Served) -> None:
    case.call_and_validate(base_url=served.url, headers=served.admin, checks=CHECKS)


@registration_api.parametrize()
@FUZZ
def test_registration_answers_as_documented(case: Any, served: Served) -> None:
    case.call_and_validate(
        base_url=served.url, headers={"authorization": f"Bearer {INITIAL_TOKEN}"}, checks=CHECKS
    )


def _documented(api: Any, path: str, answer: httpx.Response) -> httpx.Response:
    """``answer`` after checking it against the document (status, media type, schema)."""
    api[path][answer.request.method].validate_response(answer)
    return answer


def test_the_admin_operations_answer_as_documented(served: Served) -> None:
    """Each operation's success, which fuzzing with random ids does not reach."""
    with httpx.Client(base_url=served.url, headers=served.admin) as client:
        users, user = "/admin/users", "/admin/users/{user_id}"
        created = _documented(
            admin_api,
            users,
            client.post(users, json={"username": "dana", "password": "a long passphrase, too"}),
        )
        assert created.status_code == 201
        path = f"/admin/users/{created.json()['user_id']}"
        assert _documented(admin_api, users, client.get(users)).status_code == 200
        assert _documented(admin_api, user, client.get(path)).json()["consents"] == {}
        for action, body in (
            ("disable", None),
            ("enable", None),
            ("revoke-sessions", None),
            ("policy", {"policy": "password"}),
            ("recovery-link", {"reset_mfa": True}),
        ):
            answer = client.post(f"{path}/{action}", json=body)
            assert _documented(admin_api, f"{user}/{action}", answer).status_code == 200
        assert _documented(admin_api, user, client.delete(path)).status_code == 204


def test_the_device_operations_answer_as_documented(served: Served) -> None:
    """Listing, showing and revoking a device that exists, which random ids never reach."""

    async def add() -> None:
        database = wiring.open_database(served.settings)
        try:
            await SqlDeviceStore(database).add(
                Device(
                    "dev-documented",
                    "android",
                    "app",
                    "strong",
                    1.0,
                    2.0,
                    1.0,
                    verdict={"device_labels": ["MEETS_STRONG_INTEGRITY"]},
                    dpop_jkt="jkt-documented",
                )
            )
        finally:
            await database.close()

    asyncio.run(add())
    devices, device = "/admin/devices", "/admin/devices/{device_id}"
    with httpx.Client(base_url=served.url, headers=served.admin) as client:
        listed = _documented(admin_api, devices, client.get(devices, params={"limit": 5}))
        assert "dev-documented" in {d["device_id"] for d in listed.json()["devices"]}
        path = "/admin/devices/dev-documented"
        assert _documented(admin_api, device, client.get(path)).json()["level"] == "strong"
        revoke = client.post(f"{path}/revoke", json={"reason": "documented"})
        assert _documented(admin_api, f"{device}/revoke", revoke).json()["families"] == 0
        refused = client.get(devices, params={"limit": "many"})
        assert _documented(admin_api, devices, refused).json()["errors"] == ["/limit"]


def test_admin_bodies_are_validated_by_their_models(served: Served) -> None:
    """RFC 9457 problem with JSON Pointers (RFC 6901) to the members at fault only."""
    with httpx.Client(base_url=served.url, headers=served.admin) as client:
        answer = client.post("/admin/users", json={"username": "erin", "password": 12345678})
        problem = _documented(admin_api, "/admin/users", answer).json()
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert problem["detail"] == "username and password are required strings"
    assert problem["errors"] == ["/password"]
    assert "12345678" not in answer.text, "the input is never echoed"


def test_the_registration_operations_answer_as_documented(served: Served) -> None:
    register, managed = "/register", "/register/{client_id}"
    initial = {"authorization": f"Bearer {INITIAL_TOKEN}"}
    with httpx.Client(base_url=served.url) as client:
        created = _documented(
            registration_api, register, client.post(register, json=NATIVE, headers=initial)
        )
        assert created.status_code == 201
        body = created.json()
        path = f"/register/{body['client_id']}"
        manage = {"authorization": f"Bearer {body['registration_access_token']}"}
        read = client.get(path, headers=manage)
        assert _documented(registration_api, managed, read).status_code == 200
        renamed = client.put(path, json={**NATIVE, "client_name": "Renamed"}, headers=manage)
        assert _documented(registration_api, managed, renamed).json()["client_name"] == "Renamed"
        refused = client.put(path, json={**NATIVE, "client_id": "another"}, headers=manage)
        assert _documented(registration_api, managed, refused).status_code == 400
        deleted = client.delete(path, headers=manage)
        assert _documented(registration_api, managed, deleted).status_code == 204


def test_no_registration_document_while_registration_is_off(
    migrated_settings: Settings,
) -> None:
    """Deny by default: an endpoint that is not enabled is not described either."""
    app = build_app(migrated_settings, lambda: wiring.open_runtime(migrated_settings))
    with TestClient(app) as client:
        assert client.get("/openapi/registration.json").status_code == 404
        assert client.get("/openapi/admin.json").status_code == 200
