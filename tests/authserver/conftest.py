"""An authorization server with one native app, two backends and one user, on SQLite
and PostgreSQL, driven through the real ASGI app with its audit records kept."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion import wiring
from bastion.accounts.passwords import Passwords
from bastion.accounts.settings import PasswordSettings
from bastion.audit.sinks import MemorySink
from bastion.clock import Clock
from bastion.config import Settings, load_settings
from bastion.oauth import pkce
from bastion.oauth.clients import hash_secret
from bastion.runtime import Runtime
from bastion.store.sql.users import SqlUserStore
from bastion.web.app import build_app
from tests.conftest import write_config
from tests.support import schema

ISSUER = "http://127.0.0.1:8000"
APP_REDIRECT = "com.example.app:/cb"
CLAIMED_REDIRECT = "https://app.example.com/cb"
API = "https://api.example.com"
BACKEND_SECRET = "backend-secret-0123456789abcdefghijklmnopqrstuv"
GATEWAY_SECRET = "gateway-secret-0123456789abcdefghijklmnopqrstuv"
ADMIN_SECRET = "admin-secret-0123456789abcdefghijklmnopqrstuvwx"
PASSWORD = "correct horse battery staple"
VERIFIER = "verifier-" + "x" * 50

CONFIG = f"""
issuer = "{ISSUER}"
[oauth]
[[oauth.clients]]
client_id = "mobile"
name = "Example App"
type = "public"
redirect_uris = ["{APP_REDIRECT}", "http://127.0.0.1/callback", "{CLAIMED_REDIRECT}"]
scopes = ["openid", "profile", "orders:read", "orders:write"]
resources = ["{API}"]
[[oauth.clients]]
client_id = "strict"
type = "public"
redirect_uris = ["com.example.strict:/cb"]
scopes = ["openid"]
require_pushed_authorization_requests = true
[[oauth.clients]]
client_id = "bound"
type = "public"
redirect_uris = ["com.example.bound:/cb"]
scopes = ["openid"]
dpop_bound_access_tokens = true
[[oauth.clients]]
client_id = "backend"
type = "confidential"
grant_types = ["client_credentials"]
scopes = ["reports"]
resources = ["{ISSUER}", "{API}"]
introspection = true
secret_sha256 = "{hash_secret(BACKEND_SECRET)}"
[[oauth.clients]]
client_id = "operator-tool"
type = "confidential"
grant_types = ["client_credentials"]
scopes = ["bastion:admin"]
resources = ["{ISSUER}/admin"]
secret_sha256 = "{hash_secret(ADMIN_SECRET)}"
[[oauth.clients]]
client_id = "gateway"
type = "confidential"
grant_types = ["urn:ietf:params:oauth:grant-type:token-exchange"]
scopes = ["orders:read"]
resources = ["https://orders.internal"]
exchange_subject_audiences = ["{API}"]
secret_sha256 = "{hash_secret(GATEWAY_SECRET)}"
"""


@dataclass
class Server:
    client: TestClient
    settings: Settings
    user_id: str
    audit: MemorySink
    opened: dict[str, Runtime]

    def events(self, action: str) -> list[dict[str, Any]]:
        return [r for r in self.audit.records if r["action"] == action]

    @property
    def runtime(self) -> Runtime:
        return self.opened["runtime"]

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a coroutine function in the app's event loop."""
        return self.client.portal.call(fn, *args)  # type: ignore[union-attr]


@pytest.fixture
def server(tmp_path: Path, database_url: str, master_key_b64: str) -> Iterator[Server]:
    with start_server(tmp_path, database_url, master_key_b64) as started:
        yield started


_PASSWORD_HASHES: dict[str, str] = {}


def password_hash(settings: PasswordSettings) -> str:
    """Alice's argon2id hash of ``PASSWORD`` under ``settings``, made once per parameter set:
    a hash with the server's own parameters, as a sign-up would store, without paying for
    two more full argon2 runs (``Passwords`` makes its dummy hash too) in every test."""
    key = settings.model_dump_json()
    if key not in _PASSWORD_HASHES:
        _PASSWORD_HASHES[key] = Passwords(settings).hash(PASSWORD)
    return _PASSWORD_HASHES[key]


@contextmanager
def start_server(
    tmp_path: Path,
    database_url: str,
    master_key_b64: str,
    issuer: str = ISSUER,
    *,
    oauth: str = "",
    clock: Clock | None = None,
) -> Iterator[Server]:
    """The server of ``CONFIG``; ``oauth`` adds lines to its ``[oauth]`` table."""
    text = CONFIG.replace(f'issuer = "{ISSUER}"', f'issuer = "{issuer}"')
    settings = load_settings(
        write_config(tmp_path, text.replace("[oauth]\n", f"[oauth]\n{oauth}\n", 1)),
        {
            "BASTION_MASTER_KEY": master_key_b64,
            "BASTION_DATABASE_URL": database_url,
        },
    )

    async def prepare() -> str:
        await schema.migrate(settings)
        database = wiring.open_database(settings)
        try:
            user = await SqlUserStore(database).create(
                "alice", password_hash(settings.accounts.passwords), 0.0
            )
            return user.user_id
        finally:
            await database.close()

    user_id = asyncio.run(prepare())
    sink = MemorySink()
    opened: dict[str, Runtime] = {}

    @asynccontextmanager
    async def open_runtime() -> AsyncIterator[Runtime]:
        async with wiring.open_runtime(settings, clock=clock, audit_sinks=(sink,)) as runtime:
            opened["runtime"] = runtime
            yield runtime

    app = WithTestPeer(build_app(settings, open_runtime))
    with TestClient(app, base_url=issuer, follow_redirects=False) as client:
        yield Server(client, settings, user_id, sink, opened)


class WithTestPeer:
    """The app, seeing a request with ``x-test-peer: ADDRESS`` as coming from ADDRESS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"x-test-peer":
                    scope = {**scope, "client": (value.decode(), 50000)}
        await self.app(scope, receive, send)


def authorize_params(**overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "client_id": "mobile",
        "redirect_uri": APP_REDIRECT,
        "response_type": "code",
        "scope": "openid profile orders:read",
        "state": "st-1",
        "nonce": "nonce-1",
        "code_challenge": pkce.s256(VERIFIER),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, html
    return match.group(1)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def sign_in(client: TestClient, location: str, password: str = PASSWORD) -> str:
    """Follow a redirect to the login page and sign in; returns the next Location."""
    assert location.startswith("/login?"), location
    page = client.get(location)
    assert page.status_code == 200
    interaction = query_of(location)["interaction"]
    response = client.post(
        "/login",
        data={
            "interaction": interaction,
            "csrf": csrf_of(page.text),
            "username": "alice",
            "password": password,
        },
    )
    assert response.status_code in (303, 400), response.text
    return str(response.headers.get("location", ""))


def approve(client: TestClient, location: str, decision: str = "allow") -> str:
    assert location.startswith("/consent?"), location
    page = client.get(location)
    assert page.status_code == 200, page.text
    interaction = query_of(location)["interaction"]
    response = client.post(
        "/consent",
        data={"interaction": interaction, "csrf": csrf_of(page.text), "decision": decision},
    )
    assert response.status_code == 303
    return str(response.headers["location"])


def get_code(client: TestClient, **overrides: str | None) -> str:
    """The whole browser part: authorize, sign in if needed, consent if needed."""
    response = client.get("/authorize", params=authorize_params(**overrides))
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    if location.startswith("/login?"):
        location = sign_in(client, location)
    if location.startswith("/consent?"):
        location = approve(client, location)
    assert location.startswith(overrides.get("redirect_uri") or APP_REDIRECT), location
    answer = query_of(location)
    assert answer["iss"] == ISSUER, "RFC 9207: iss on every authorization response"
    return answer["code"]


def redeem(client: TestClient, code: str, **overrides: str) -> dict[str, object]:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": APP_REDIRECT,
        "client_id": "mobile",
        "code_verifier": VERIFIER,
        **overrides,
    }
    response = client.post("/token", data=data)
    body: dict[str, object] = response.json()
    body["_status"] = response.status_code
    return body


def tokens(server: Server, **overrides: str | None) -> dict[str, Any]:
    """The mobile app's tokens after the whole code flow."""
    body = redeem(server.client, get_code(server.client, **overrides))
    assert body["_status"] == 200, body
    return body


def exchange(
    server: Server,
    subject_token: object,
    auth: tuple[str, str] = ("gateway", GATEWAY_SECRET),
    **extra: str,
) -> Any:
    """RFC 8693 token exchange, by the gateway for the orders service by default."""
    data = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": subject_token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": "https://orders.internal",
        "scope": "orders:read",
        **extra,
    }
    return server.client.post("/token", data=data, auth=auth)
