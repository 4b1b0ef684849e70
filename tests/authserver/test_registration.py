"""Dynamic client registration (RFC 7591) and management (RFC 7592)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from click.testing import CliRunner
from joserfc import jwt
from joserfc.jwk import ECKey
from starlette.testclient import TestClient

from bastion import wiring
from bastion.cli.main import cli
from bastion.config import load_settings
from bastion.oauth.client_auth import JWT_BEARER
from bastion.oauth.clients import TOKEN_EXCHANGE as EXCHANGE
from bastion.oauth.clients import Client
from bastion.web.app import BastionApp
from tests.authserver.conftest import ISSUER, Server, authorize_params
from tests.conftest import write_config
from tests.support import schema

INITIAL_TOKEN = "initial-access-token-for-tests-0123456789"
OPERATOR_KEY = ECKey.generate_key("P-256", parameters={"kid": "operator"})
NATIVE = {"redirect_uris": ["com.example.install:/cb"], "client_name": "Install", "scope": "openid"}


@pytest.fixture
def registrar(tmp_path: Path, database_url: str, master_key_b64: str) -> Iterator[TestClient]:
    keys = tmp_path / "operator.jwks.json"
    keys.write_bytes(orjson.dumps({"keys": [OPERATOR_KEY.as_dict(private=False)]}))
    config = write_config(
        tmp_path,
        f'''
issuer = "{ISSUER}"
[oauth.registration]
enabled = true
software_statement_jwks_file = "{keys.name}"
default_scopes = ["openid", "profile"]
''',
    )
    settings = load_settings(
        config,
        {
            "BASTION_MASTER_KEY": master_key_b64,
            "BASTION_DATABASE_URL": database_url,
            "BASTION_REGISTRATION_TOKEN": INITIAL_TOKEN,
        },
    )
    asyncio.run(schema.migrate(settings))
    with TestClient(wiring.create_app(settings), base_url=ISSUER, follow_redirects=False) as client:
        yield client


def register(client: TestClient, body: dict[str, Any], token: str | None = INITIAL_TOKEN) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return client.post("/register", json=body, headers=headers)


def statement(key: ECKey = OPERATOR_KEY, **claims: Any) -> str:
    payload = {
        "iss": "operator",
        "software_id": "orders-app",
        "scope": "openid orders:read",
        "resources": ["https://api.example.com"],
        **claims,
    }
    return jwt.encode(
        {"alg": "ES256", "kid": key.kid or "operator"}, payload, key, algorithms=["ES256"]
    )


def test_registration_is_off_unless_enabled(server: Server) -> None:
    response = server.client.post("/register", json=NATIVE)
    assert response.status_code == 404
    assert (
        "registration_endpoint"
        not in server.client.get("/.well-known/oauth-authorization-server").json()
    )


def test_registration_needs_a_credential(registrar: TestClient) -> None:
    assert register(registrar, NATIVE, token=None).status_code == 401
    assert register(registrar, NATIVE, token="guess").status_code == 401


def test_register_read_update_delete(registrar: TestClient) -> None:
    created = register(registrar, NATIVE)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["token_endpoint_auth_method"] == "none"
    assert body["registration_client_uri"] == f"{ISSUER}/register/{body['client_id']}"
    manage = {"authorization": f"Bearer {body['registration_access_token']}"}
    uri = f"/register/{body['client_id']}"
    assert registrar.get(uri, headers=manage).json()["client_name"] == "Install"
    assert registrar.get(uri, headers={"authorization": "Bearer wrong"}).status_code == 401
    wider = registrar.put(uri, headers=manage, json={**NATIVE, "scope": "openid admin"})
    assert wider.json()["error"] == "invalid_client_metadata"
    renamed = registrar.put(uri, headers=manage, json={**NATIVE, "client_name": "Renamed"})
    assert renamed.json()["client_name"] == "Renamed"
    assert registrar.delete(uri, headers=manage).status_code == 204
    assert registrar.get(uri, headers=manage).status_code == 401


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({**NATIVE, "redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri"),
        ({**NATIVE, "redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({**NATIVE, "scope": "openid orders:write"}, "invalid_client_metadata"),
        ({**NATIVE, "grant_types": ["password"]}, "invalid_client_metadata"),
        ({**NATIVE, "response_types": ["token"]}, "invalid_client_metadata"),
        ({**NATIVE, "jwks_uri": "https://x/jwks"}, "invalid_client_metadata"),
        ({**NATIVE, "redirect_uris": "com.example.x:/cb"}, "invalid_client_metadata"),
    ],
)
def test_refused_metadata(registrar: TestClient, body: dict[str, Any], error: str) -> None:
    response = register(registrar, body)
    assert response.status_code == 400
    assert response.json()["error"] == error


@pytest.mark.parametrize(
    ("member", "value", "error", "description"),
    [
        (
            "redirect_uris",
            "com.example.x:/cb",
            "invalid_client_metadata",
            "redirect_uris must be a list of strings",
        ),
        (
            "grant_types",
            ["authorization_code", 7],
            "invalid_client_metadata",
            "grant_types must be a list of strings",
        ),
        ("client_name", ["Install"], "invalid_client_metadata", "client_name must be a string"),
        ("scope", 1, "invalid_client_metadata", "scope must be a string"),
        ("jwks", {"keys": "none"}, "invalid_client_metadata", "jwks must be a JWK Set"),
        (
            "jwks",
            {"keys": [1]},
            "invalid_client_metadata",
            "jwks must hold public EC, OKP or RSA keys only",
        ),
        (
            "jwks_uri",
            "https://x/jwks",
            "invalid_client_metadata",
            "jwks_uri is not supported; send jwks",
        ),
        ("software_statement", 42, "invalid_software_statement", "must be a JWT string"),
    ],
)
def test_members_of_the_wrong_type_get_rfc7591_errors(
    registrar: TestClient, member: str, value: Any, error: str, description: str
) -> None:
    """RFC 7591 §3.2.2: the metadata model refuses with the registration error body, the
    same one the registration core gives, never a framework's 422."""
    response = register(registrar, {**NATIVE, member: value})
    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}
    assert response.headers["cache-control"] == "no-store"


def test_an_update_cannot_rename_the_client_id(registrar: TestClient) -> None:
    """RFC 7592 §2.2: the client_id in an update is the client's own."""
    body = register(registrar, NATIVE).json()
    manage = {"authorization": f"Bearer {body['registration_access_token']}"}
    for client_id in ("another", 5):
        response = registrar.put(
            f"/register/{body['client_id']}",
            headers=manage,
            json={**NATIVE, "client_id": client_id},
        )
        assert response.status_code == 400
        assert response.json() == {
            "error": "invalid_client_metadata",
            "error_description": "client_id cannot change",
        }


def test_malformed_bodies(registrar: TestClient) -> None:
    headers = {"authorization": f"Bearer {INITIAL_TOKEN}", "content-type": "application/json"}
    for content in (b"{", b"[]", b"null", b"\xff", b'{"a": NaN}'):
        response = registrar.post("/register", content=content, headers=headers)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_client_metadata"


def test_a_member_named_twice_is_refused(registrar: TestClient) -> None:
    """RFC 8259 §4: names SHOULD be unique and parsers differ on which one wins, so a body
    naming a member twice is refused rather than read one way here and another there."""
    headers = {"authorization": f"Bearer {INITIAL_TOKEN}", "content-type": "application/json"}
    body = b'{"redirect_uris": ["com.example.app:/cb"], "redirect_uris": ["https://evil.example/"]}'
    response = registrar.post("/register", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"
    assert "twice" in response.json()["error_description"]


def test_software_statement_grants_what_the_operator_signed(registrar: TestClient) -> None:
    """RFC 7591 §2.3: statement values take precedence; no initial token needed."""
    created = register(registrar, {**NATIVE, "software_statement": statement()}, token=None)
    assert created.status_code == 201, created.text
    assert set(created.json()["scope"].split()) == {"openid", "orders:read"}
    forged = register(
        registrar,
        {
            **NATIVE,
            "software_statement": statement(
                ECKey.generate_key("P-256", parameters={"kid": "operator"})
            ),
        },
        token=None,
    )
    assert forged.json()["error"] == "invalid_software_statement"
    expired = register(
        registrar,
        {**NATIVE, "software_statement": statement(exp=int(time.time()) - 10)},
        token=None,
    )
    assert expired.json()["error"] == "invalid_software_statement"


def test_a_per_install_key_authenticates_the_install(registrar: TestClient) -> None:
    """The install registers its own public key and proves possession with private_key_jwt."""
    device_key = ECKey.generate_key("P-256", parameters={"kid": "device"})
    created = register(
        registrar,
        {
            **NATIVE,
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [device_key.as_dict(private=False)]},
        },
    )
    assert created.status_code == 201, created.text
    client_id = created.json()["client_id"]
    assertion = jwt.encode(
        {"alg": "ES256", "kid": "device"},
        {
            "iss": client_id,
            "sub": client_id,
            "aud": ISSUER,
            "jti": "device-jti-1",
            "exp": int(time.time()) + 60,
        },
        device_key,
        algorithms=["ES256"],
    )
    params = authorize_params(
        client_id=client_id, redirect_uri="com.example.install:/cb", scope="openid"
    )
    pushed = registrar.post(
        "/par", data={**params, "client_assertion_type": JWT_BEARER, "client_assertion": assertion}
    )
    assert pushed.status_code == 201, pushed.text
    handle = pushed.json()["request_uri"].rsplit(":", 1)[1]
    stored = asyncio.run(_stored_push(registrar, handle))
    assert b"client_assertion" not in stored, "credentials are not kept with the request"
    replayed = registrar.post(
        "/par", data={**params, "client_assertion_type": JWT_BEARER, "client_assertion": assertion}
    )
    assert replayed.status_code == 401, "RFC 7523 §3: an assertion's jti is single use"


async def _stored_push(client: TestClient, handle: str) -> bytes:
    """What the server kept for a pushed request (the embedded hot store is in memory)."""
    app: Any = client.app
    while not isinstance(app, BastionApp):
        app = app.app
    value = await app.runtime.hot.get(f"par:{handle}")
    assert value is not None
    return bytes(value)


@pytest.mark.parametrize(
    "grants",
    [
        ["client_credentials"],
        ["urn:ietf:params:oauth:grant-type:token-exchange"],
        ["authorization_code", "refresh_token", "client_credentials"],
    ],
)
def test_registration_cannot_grant_itself_backend_powers(
    registrar: TestClient, grants: list[str]
) -> None:
    """Self-registration yields an app's code flow only; more needs the operator's word."""
    body = {**NATIVE, "token_endpoint_auth_method": "client_secret_basic", "grant_types": grants}
    assert register(registrar, body).json()["error"] == "invalid_client_metadata"
    with_statement = {**body, "software_statement": statement()}
    assert register(registrar, with_statement, token=None).json()["error"] == (
        "invalid_client_metadata"
    ), "a statement without grant_types does not allow them"


def test_a_statement_may_allow_more_grant_types(registrar: TestClient) -> None:
    body = {
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["client_credentials"],
        "scope": "orders:read",
        "software_statement": statement(grant_types=["client_credentials"]),
    }
    assert register(registrar, body, token=None).status_code == 201


@pytest.mark.parametrize(
    "jwks",
    [
        {"keys": [1]},
        {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
        {"keys": [{**ECKey.generate_key("P-256").as_dict(private=True)}]},
        {"keys": [{"kty": "EC", "crv": "P-256", "x": "bad", "y": "bad"}]},
    ],
)
def test_registered_keys_must_be_public_and_valid(
    registrar: TestClient, jwks: dict[str, Any]
) -> None:
    body = {**NATIVE, "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks}
    assert register(registrar, body).json()["error"] == "invalid_client_metadata"


def test_control_characters_in_metadata(registrar: TestClient) -> None:
    assert register(registrar, {**NATIVE, "client_name": "a\x00b"}).status_code == 400
    assert (
        registrar.get("/register/a%00b", headers={"authorization": "Bearer x"}).status_code == 401
    )


def _stored_client(client: TestClient, client_id: str) -> Client:
    app: Any = client.app
    while not isinstance(app, BastionApp):
        app = app.app
    found = client.portal.call(app.runtime.auth.clients.store.get, client_id)  # type: ignore[union-attr]
    assert found is not None
    return cast(Client, found)


def test_only_a_statement_says_whose_tokens_a_client_may_exchange(registrar: TestClient) -> None:
    """RFC 8693 §5: accepting another party's tokens as subjects is the operator's decision."""
    backend = {
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": [EXCHANGE],
        "scope": "orders:read",
        "exchange_subject_audiences": ["https://api.example.com"],
    }
    signed = statement(
        grant_types=[EXCHANGE], exchange_subject_audiences=["https://api.example.com"]
    )
    created = register(registrar, {**backend, "software_statement": signed}, token=None)
    assert created.status_code == 201, created.text
    stored = _stored_client(registrar, created.json()["client_id"])
    assert stored.exchange_subject_audiences == {"https://api.example.com"}
    assert stored.exchange_delegation_chains is False
    unsigned = register(
        registrar,
        {**backend, "software_statement": statement(grant_types=[EXCHANGE])},
        token=None,
    )
    assert unsigned.status_code == 201, unsigned.text
    assert not _stored_client(registrar, unsigned.json()["client_id"]).exchange_subject_audiences


APP_STATEMENT: dict[str, Any] = {
    "client_name": "Orders",
    "logo_uri": "https://orders.example.com/logo.png",
    "redirect_uris": ["com.example.orders:/cb", "https://orders.example.com/cb"],
    "scope": "openid orders:read",
}


def _registered(registrar: TestClient, **claims: Any) -> tuple[str, dict[str, str]]:
    """A client registered with a statement (no initial token): its URI and credential."""
    body = {"software_statement": statement(**{**APP_STATEMENT, **claims})}
    created = register(registrar, body, token=None)
    assert created.status_code == 201, created.text
    answer = created.json()
    uri = f"/register/{answer['client_id']}"
    return uri, {"authorization": f"Bearer {answer['registration_access_token']}"}


@pytest.mark.parametrize(
    "change",
    [
        {"redirect_uris": ["com.attacker.app:/cb"]},
        {"redirect_uris": ["com.example.orders:/cb", "com.attacker.app:/cb"]},
        {"client_name": "Orders (free gift)"},
        {"logo_uri": "https://attacker.example/logo.png"},
        {"scope": "openid orders:read orders:write"},
        {"grant_types": ["authorization_code", "refresh_token", "client_credentials"]},
        {"token_endpoint_auth_method": "private_key_jwt"},
        {"jwks": {"keys": [ECKey.generate_key("P-256").as_dict(private=False)]}},
        {"jwks_uri": "https://attacker.example/jwks"},
    ],
)
def test_an_update_cannot_escape_the_software_statement(
    registrar: TestClient, change: dict[str, Any]
) -> None:
    """RFC 7591 §3.1.1 and RFC 7592 §2.2: statement values take precedence, so they are a
    ceiling on every update. A statement ships inside the app, so anyone can register with
    it; the trusted name and scopes must not then send codes to the holder's own app."""
    keys = {"keys": [ECKey.generate_key("P-256").as_dict(private=False)]}
    fixed = {"token_endpoint_auth_method": "private_key_jwt", "jwks": keys}
    uri, manage = _registered(
        registrar,
        grant_types=["authorization_code", "refresh_token"],
        **(fixed if "jwks" in change else {}),
    )
    response = registrar.put(uri, headers=manage, json={**APP_STATEMENT, **change})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"
    kept = registrar.get(uri, headers=manage).json()
    assert kept["redirect_uris"] == APP_STATEMENT["redirect_uris"]
    assert kept["client_name"] == "Orders"


def test_an_update_may_narrow_what_the_statement_fixed(registrar: TestClient) -> None:
    uri, manage = _registered(registrar)
    narrowed = registrar.put(
        uri,
        headers=manage,
        json={"redirect_uris": ["com.example.orders:/cb"], "scope": "openid"},
    )
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["redirect_uris"] == ["com.example.orders:/cb"]
    assert narrowed.json()["scope"] == "openid"
    assert narrowed.json()["client_name"] == "Orders", "omitted: the statement's value"
    again = registrar.put(uri, headers=manage, json=APP_STATEMENT)
    assert again.status_code == 200, "back up to the ceiling, never past it"


def test_a_new_statement_may_narrow_but_never_move_or_widen(registrar: TestClient) -> None:
    """RFC 7591 §3.1.1: statement values take precedence. Statements ship inside apps, so
    one sent with an update may restate or narrow the stored values, never replace them:
    an older or looser statement must not undo what the operator narrowed since."""
    uri, manage = _registered(registrar)
    moved: dict[str, Any] = {**APP_STATEMENT, "redirect_uris": ["com.example.orders2:/cb"]}
    forged = statement(ECKey.generate_key("P-256", parameters={"kid": "operator"}), **moved)
    refused = registrar.put(uri, headers=manage, json={**moved, "software_statement": forged})
    assert refused.json()["error"] == "invalid_software_statement"
    signed = registrar.put(
        uri, headers=manage, json={**moved, "software_statement": statement(**moved)}
    )
    assert signed.json()["error"] == "invalid_client_metadata", "a signed move is a widening"
    narrow: dict[str, Any] = {**APP_STATEMENT, "redirect_uris": ["com.example.orders:/cb"]}
    narrowed = registrar.put(
        uri, headers=manage, json={**narrow, "software_statement": statement(**narrow)}
    )
    assert narrowed.status_code == 200, narrowed.text
    back = registrar.put(uri, headers=manage, json=APP_STATEMENT)
    assert back.json()["error"] == "invalid_client_metadata", "the narrower values bind now"


def test_a_looser_statement_frees_nothing(registrar: TestClient) -> None:
    """A statement that leaves redirect URIs open does not free them: the stored values
    still bind."""
    uri, manage = _registered(registrar)
    loose = statement(scope=None, resources=None, redirect_uris=None)
    for body in (
        {**APP_STATEMENT, "redirect_uris": ["com.attacker.app:/cb"], "software_statement": loose},
        {"redirect_uris": ["com.attacker.app:/cb"], "software_statement": loose},
    ):
        refused = registrar.put(uri, headers=manage, json=body)
        assert refused.json()["error"] == "invalid_client_metadata"


def test_the_operators_changes_bind_the_registrant(
    registrar: TestClient, tmp_path: Path, database_url: str, master_key_b64: str
) -> None:
    """What the operator narrows with `bastion clients update` stays narrowed: neither an
    empty update nor the original statement (public: it ships in the app) brings back
    the scope, redirect URI or grant the operator removed (RFC 7592 §2.2)."""
    grants = ["authorization_code", "refresh_token", "client_credentials"]
    confidential: dict[str, Any] = {
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": grants,
    }
    uri, manage = _registered(registrar, **confidential)
    client_id = uri.rsplit("/", 1)[1]
    env = {
        "BASTION_CONFIG": str(tmp_path / "bastion.toml"),
        "BASTION_MASTER_KEY": master_key_b64,
        "BASTION_DATABASE_URL": database_url,
    }
    narrowed = CliRunner().invoke(
        cli,
        [
            "clients",
            "update",
            "--scope",
            "openid",
            "--redirect-uri",
            "com.example.orders:/cb",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            # A registered client id may begin with "-"; after "--" it is never an option.
            "--",
            client_id,
        ],
        env=env,
    )
    assert narrowed.exit_code == 0, narrowed.output
    original = statement(**APP_STATEMENT, **confidential)
    for body in ({}, {"software_statement": original}, APP_STATEMENT):
        answer = registrar.put(uri, headers=manage, json=body)
        if answer.status_code == 200:
            kept = answer.json()
            assert kept["scope"] == "openid", body
            assert kept["redirect_uris"] == ["com.example.orders:/cb"], body
            assert "client_credentials" not in kept["grant_types"], body
        else:
            assert answer.json()["error"] == "invalid_client_metadata", body
    renamed = registrar.put(uri, headers=manage, json={"client_name": "Orders"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["scope"] == "openid"


def test_without_a_statement_the_registrant_owns_its_metadata(registrar: TestClient) -> None:
    """A client registered with the initial access token has no statement to respect."""
    created = register(registrar, NATIVE).json()
    manage = {"authorization": f"Bearer {created['registration_access_token']}"}
    uri = f"/register/{created['client_id']}"
    moved = registrar.put(uri, headers=manage, json={**NATIVE, "redirect_uris": ["com.x.y:/cb"]})
    assert moved.json()["redirect_uris"] == ["com.x.y:/cb"]


def test_registered_client_ids_are_one_hex_word(registrar: TestClient) -> None:
    # Never a leading "-" that a shell reads as an option (bastion clients update ID).
    # Five: the registration endpoint's own rate limit stays out of the way.
    ids = {register(registrar, NATIVE).json()["client_id"] for _ in range(5)}
    assert len(ids) == 5
    assert all(re.fullmatch(r"[0-9a-f]{32}", client_id) for client_id in ids)


def test_branding_is_registered_shown_and_replaced(registrar: TestClient) -> None:
    # RFC 7591 §2: logo_uri, client_uri, policy_uri, tos_uri; accent_color is Bastion's.
    branded = {
        **NATIVE,
        "logo_uri": "https://cdn.example/logo.png",
        "policy_uri": "https://install.example/privacy",
        "tos_uri": "https://install.example/terms",
        "client_uri": "https://install.example",
        "accent_color": "#0b6e4f",
    }
    created = register(registrar, branded)
    assert created.status_code == 201, created.text
    body = created.json()
    for name in ("logo_uri", "policy_uri", "tos_uri", "client_uri", "accent_color"):
        assert body[name] == branded[name]
    manage = {"authorization": f"Bearer {body['registration_access_token']}"}
    uri = f"/register/{body['client_id']}"
    # RFC 7592 §2.2: an update replaces the metadata; what it leaves out is removed.
    replaced = registrar.put(uri, headers=manage, json={**NATIVE, "client_id": body["client_id"]})
    assert replaced.status_code == 200, replaced.text
    assert "logo_uri" not in replaced.json()


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("logo_uri", "http://cdn.example/logo.png"),
        ("policy_uri", "javascript:alert(1)"),
        ("tos_uri", "https://cdn.example;img-src */x"),
        ("accent_color", "red"),
        ("logo_uri", 42),
    ],
)
def test_unsafe_branding_is_refused(registrar: TestClient, member: str, value: object) -> None:
    refused = register(registrar, {**NATIVE, member: value})
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_client_metadata"


def test_branding_a_statement_signed_cannot_be_changed(registrar: TestClient) -> None:
    # RFC 7591 §3.1.1: statement values take precedence, on update too (RFC 7592 §2.2).
    # Otherwise anyone holding the app's statement could show the signed name and logo
    # with links of their own.
    signed: dict[str, Any] = {
        "client_name": "Orders App",
        "logo_uri": "https://orders.example/logo.png",
        "client_uri": "https://orders.example/",
        "policy_uri": "https://orders.example/privacy",
        "tos_uri": "https://orders.example/terms",
        "accent_color": "#112233",
    }
    created = register(registrar, {**NATIVE, "software_statement": statement(**signed)}, token=None)
    assert created.status_code == 201, created.text
    body = created.json()
    manage = {"authorization": f"Bearer {body['registration_access_token']}"}
    uri = f"/register/{body['client_id']}"
    for name, value in (
        ("policy_uri", "https://phish.example/login"),
        ("tos_uri", "https://phish.example/t"),
        ("client_uri", "https://phish.example/"),
        ("accent_color", "#000000"),
        ("logo_uri", "https://phish.example/logo.png"),
    ):
        changed = registrar.put(
            uri, headers=manage, json={**NATIVE, "client_id": body["client_id"], name: value}
        )
        assert changed.status_code == 400, name
        assert changed.json()["error"] == "invalid_client_metadata"
    assert registrar.get(uri, headers=manage).json()["policy_uri"] == signed["policy_uri"]
