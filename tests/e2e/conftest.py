"""Browser tests: the system Chromium, driven by Playwright, against ``bastion serve``.

One server per module (SQLite, in-memory hot state) with one public client whose redirect
URI is a loopback URL nothing listens on (RFC 8252 §7.3): the browser's navigation to it is
answered by ``context.route``, which is where the app reads its code. Every test gets its
own user, so the factors one test enrols never leak into another.

The issuer is ``http://localhost:<port>`` and the browser goes there, never to the IP:
WebAuthn needs a domain as RP ID, and ``http://localhost`` is a secure context. The server
still binds 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pyotp
import pytest
import pytest_asyncio
from click.testing import CliRunner
from playwright.async_api import (
    Browser,
    BrowserContext,
    CDPSession,
    Page,
    Route,
    async_playwright,
    expect,
)
from pytest_asyncio import is_async_test

from bastion.cli.main import cli
from bastion.config import encode_master_key
from bastion.oauth import pkce
from tests.conftest import write_config
from tests.support.server import bastion, serving
from tests.support.services import free_port, unavailable

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]
# Every wait is bounded: a page that never arrives fails the test in 10 s, not at a global
# timeout.
TIMEOUT_MS = 10_000
expect.set_options(timeout=TIMEOUT_MS)

PASSWORD = "a passphrase for the browser tests"
CLIENT_ID = "browser-app"
CLIENT_NAME = "Browser Test App"
SCOPE = "openid profile"
# The app's branding (RFC 7591 §2 metadata and Bastion's accent colour).
BRAND_LOGO = "https://brand.example/logo.png"
BRAND_POLICY = "https://brand.example/privacy"
BRAND_TERMS = "https://brand.example/terms"
BRAND_ACCENT = "#0b6e4f"

ACR_PASSWORD = "urn:bastion:acr:password"
ACR_MFA = "urn:bastion:acr:mfa"
ACR_PHISHING_RESISTANT = "urn:bastion:acr:phishing-resistant"

SESSION_COOKIE = "bastion-session"  # an http issuer gets unprefixed cookie names


@dataclass(frozen=True)
class Server:
    """A running ``bastion serve``; ``base`` is the issuer, as the browser sees it."""

    base: str
    env: dict[str, str]
    config: Path
    callback: str

    def create_user(self, prefix: str = "user") -> str:
        """``bastion users create``, run in this process (no interpreter to start per user)
        against the server's database."""
        username = f"{prefix}-{secrets.token_hex(4)}"
        created = CliRunner().invoke(
            cli,
            ["users", "create", username, "--password-stdin", "-c", str(self.config)],
            input=PASSWORD + "\n",
            env=self.env,
        )
        assert created.exit_code == 0, created.output
        return username


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("bastion-e2e")
    port, callback_port = free_port(), free_port()
    base = f"http://localhost:{port}"
    config = write_config(
        directory,
        f'''
issuer = "{base}"
[server]
host = "127.0.0.1"
port = {port}
[[oauth.clients]]
client_id = "{CLIENT_ID}"
name = "{CLIENT_NAME}"
type = "public"
redirect_uris = ["http://127.0.0.1/callback"]
scopes = ["openid", "profile", "notes:read"]
logo_uri = "{BRAND_LOGO}"
policy_uri = "{BRAND_POLICY}"
tos_uri = "{BRAND_TERMS}"
accent_color = "{BRAND_ACCENT}"
[oauth.scope_descriptions]
"notes:read" = {{ en = "Read your notes", de = "Ihre Notizen lesen" }}
''',
    )
    env = {
        "BASTION_MASTER_KEY": encode_master_key(secrets.token_bytes(32)),
        "BASTION_CONFIG": "",
    }
    upgraded = bastion(["db", "upgrade", "-c", str(config)], env)
    assert upgraded.returncode == 0, upgraded.stderr
    with serving(["-c", str(config)], env, f"http://127.0.0.1:{port}"):
        yield Server(base, env, config, f"http://127.0.0.1:{callback_port}/callback")


@pytest.fixture
def username(server: Server) -> str:
    return server.create_user()


# --- the browser ----------------------------------------------------------------------------

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One Chromium for the whole session, so every browser test runs in the session's event
    loop, where Playwright's objects live. Each test still gets its own browser context (a
    fresh profile: cookies, storage, virtual authenticators), as before."""
    in_session_loop = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if is_async_test(item) and HERE in item.path.resolve().parents:
            item.add_marker(in_session_loop, append=False)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        unavailable(
            "Chromium", f"{CHROMIUM} is missing", hint="apt-get install chromium (.ci/run does)"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


async def new_context(browser: Browser, server: Server, **options: Any) -> BrowserContext:
    """A fresh browser profile whose navigations to the app's redirect URI are caught."""
    context = await browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)

    async def app_page(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body="<p>Back in the app</p>")

    await context.route(lambda url: url.startswith(server.callback), app_page)
    return context


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser, server: Server) -> AsyncIterator[BrowserContext]:
    created = await new_context(browser, server)
    yield created
    await created.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


async def session_cookie(context: BrowserContext) -> str | None:
    for cookie in await context.cookies():
        if cookie.get("name") == SESSION_COOKIE:
            return cookie.get("value")
    return None


# --- an attacker's site --------------------------------------------------------------------


@dataclass(frozen=True)
class Attacker:
    """Another site (127.0.0.1 is not the same site as localhost) serving ``pages``.

    A real loopback server rather than ``context.route``: Chromium's Local Network Access
    checks treat a routed response as coming from the public internet and block its frames
    and requests to localhost on their own, which would hide what Bastion does.
    """

    origin: str
    pages: dict[str, str]


@pytest.fixture
def attacker() -> Iterator[Attacker]:
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(urlsplit(self.path).path)
            payload = (body or "not found").encode()
            self.send_response(200 if body is not None else 404)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Attacker(f"http://127.0.0.1:{httpd.server_address[1]}", pages)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# --- the app: an OAuth public client with PKCE ------------------------------------------------


def claims_of(jwt: str) -> dict[str, Any]:
    """A JWT's payload, unverified: the tests only read what Bastion put there."""
    payload = jwt.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


@dataclass
class App:
    """A native app: starts authorization requests, reads the code, redeems it at /token."""

    server: Server
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    state: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    def authorize_url(self, *, acr_values: str | None = None, scope: str = SCOPE) -> str:
        self.verifier, self.state = secrets.token_urlsafe(48), secrets.token_urlsafe(12)
        params = {
            "client_id": CLIENT_ID,
            "redirect_uri": self.server.callback,
            "response_type": "code",
            "scope": scope,
            "state": self.state,
            "code_challenge": pkce.s256(self.verifier),
            "code_challenge_method": "S256",
        }
        if acr_values is not None:
            params["acr_values"] = acr_values
        return f"{self.server.base}/authorize?{urlencode(params)}"

    async def code(self, page: Page) -> str:
        """Wait for the browser to reach the redirect URI; the code, after checking state
        (RFC 6749 §10.12) and iss (RFC 9207)."""
        await page.wait_for_url(lambda url: url.startswith(self.server.callback))
        query = parse_qs(urlsplit(page.url).query)
        assert "error" not in query, query
        assert query["state"] == [self.state]
        assert query["iss"] == [self.server.base]
        return query["code"][0]

    async def token(self, code: str) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                f"{self.server.base}/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.server.callback,
                    "client_id": CLIENT_ID,
                    "code_verifier": self.verifier,
                },
            )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def refresh(self, refresh_token: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.post(
                f"{self.server.base}/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": refresh_token,
                    "client_id": CLIENT_ID,
                },
            )


@pytest.fixture
def app(server: Server) -> App:
    return App(server)


# --- sign-in steps --------------------------------------------------------------------------


async def enter_password(page: Page, username: str, password: str = PASSWORD) -> None:
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in", exact=True).click()


async def enter_code(page: Page, code: str) -> None:
    await expect(page.get_by_role("heading", name="Confirm it is you")).to_be_visible()
    await page.get_by_label("Code").fill(code)
    await page.get_by_role("button", name="Verify").click()


async def allow(page: Page) -> None:
    await expect(page.get_by_role("heading", name=f"{CLIENT_NAME} wants to access")).to_be_visible()
    await page.get_by_role("button", name="Allow").click()


async def open_account(page: Page, server: Server, username: str) -> None:
    """Sign in on the account page with a password (it sends a signed-out browser to
    /login and back)."""
    await page.goto(f"{server.base}/account")
    await page.wait_for_url(lambda url: urlsplit(url).path == "/login")
    await enter_password(page, username)
    await page.wait_for_url(f"{server.base}/account")
    await expect(page.get_by_role("heading", name="Your account")).to_be_visible()


def next_code(secret: str) -> str:
    """The code of the next time step: a step no earlier code used (RFC 6238 §5.2 forbids
    accepting one twice), and within the one-step drift the server allows."""
    return pyotp.TOTP(secret).at(time.time() + 30)


async def enrol_totp(page: Page) -> str:
    """From a signed-in account page: set up an authenticator app; returns its secret."""
    await page.get_by_role("button", name="Set up an authenticator app").click()
    await expect(page.get_by_role("heading", name="Set up an authenticator app")).to_be_visible()
    secret = (await page.locator("#totp-secret").inner_text()).strip()
    await page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Confirm").click()
    await expect(page.locator("#recovery-codes li")).to_have_count(10)
    return secret


# --- a virtual authenticator for WebAuthn ---------------------------------------------------


@dataclass(frozen=True)
class Authenticator:
    """A CTAP2 platform authenticator with resident keys and user verification, attached to
    one page through the Chrome DevTools Protocol's WebAuthn domain."""

    cdp: CDPSession
    authenticator_id: str

    async def set_user_verified(self, verified: bool) -> None:
        await self.cdp.send(
            "WebAuthn.setUserVerified",
            {"authenticatorId": self.authenticator_id, "isUserVerified": verified},
        )

    async def credentials(self) -> list[dict[str, Any]]:
        answer = await self.cdp.send(
            "WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id}
        )
        found: list[dict[str, Any]] = answer["credentials"]
        return found


async def add_authenticator(context: BrowserContext, page: Page) -> Authenticator:
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    added = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "ctap2Version": "ctap2_1",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return Authenticator(cdp, added["authenticatorId"])
