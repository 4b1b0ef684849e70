"""The demo walkthrough in Chromium: ``bastion demo`` as a process on free ports, its app
page at phone size, from sign-in to a refused cross-user read (issue 13 item 10).

The browser goes to the app at ``127.0.0.1`` (its loopback redirect URI) and to Bastion
at ``localhost`` (the issuer), as a person following the demo's printed lines would.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.e2e.conftest import TIMEOUT_MS, enter_password
from tests.e2e.test_pages import check_page
from tests.support.server import BASTION, interrupt
from tests.support.services import free_port

APP_NAME = "Bastion demo app"
START_TIMEOUT = 30.0
PHONE = ViewportSize(width=390, height=844)
JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")
REFRESH_TOKEN = re.compile(r"rt1\.[\w-]{16,}\.\d+\.")


@dataclass(frozen=True)
class RunningDemo:
    app: str
    base: str
    port: int
    directory: Path
    log: Path

    def password(self) -> str:
        return (self.directory / "demo-user-password.txt").read_text().strip()

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    directory = tmp_path_factory.mktemp("demo")
    port, upstream_port, app_port = free_port(), free_port(), free_port()
    log = directory / "terminal.txt"
    args = ["demo", "--dir", str(directory / "data"), "--port", str(port)]
    args += ["--upstream-port", str(upstream_port), "--app-port", str(app_port)]
    with log.open("w") as terminal:
        process = subprocess.Popen(
            [*BASTION, *args],
            env={**os.environ, "BASTION_CONFIG": "", "BASTION_MASTER_KEY": ""},
            stdout=terminal,
            stderr=subprocess.STDOUT,
        )
    running = RunningDemo(
        f"http://127.0.0.1:{app_port}", f"http://localhost:{port}", port, directory / "data", log
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, running.output()
            try:
                # The app serves once the other user's note exists: it is ready to use.
                if httpx.get(f"{running.app}/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, running.output()
            time.sleep(0.2)
        yield running
    finally:
        interrupt(process)


@pytest_asyncio.fixture(loop_scope="session")
async def phone(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport=PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    await context.close()


async def sign_in(page: Page, demo: RunningDemo) -> None:
    """From the app's page to Bastion's sign-in and consent, and back, signed in."""
    await page.goto(f"{demo.app}/")
    await page.get_by_role("link", name="Sign in with Bastion").click()
    await page.wait_for_url(lambda url: url.startswith(f"{demo.base}/login"))
    await enter_password(page, "demo", demo.password())
    await expect(page.get_by_role("heading", name=f"{APP_NAME} wants to access")).to_be_visible()
    await page.get_by_role("button", name="Allow").click()
    await page.wait_for_url(f"{demo.app}/#answer")
    await expect(page.get_by_role("heading", name="Signed in", exact=True)).to_be_visible()


async def press(page: Page, button: str) -> None:
    """Press one of the app's buttons; the page comes back with its answer."""
    await page.get_by_role("button", name=button, exact=True).click()
    await expect(page.locator("#answer-title")).to_contain_text(button)


async def test_walkthrough_from_sign_in_to_a_refused_cross_user_read(
    phone: BrowserContext, browser: Browser, demo: RunningDemo
) -> None:
    page = await phone.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    await sign_in(page, demo)

    answer = page.locator("#answer")
    await expect(page.locator("#answer-title")).to_have_text("Sign in: allowed")
    await expect(answer).to_contain_text(f"POST {demo.base}/token")
    await expect(answer).to_contain_text("<access token ")  # shown by fingerprint only
    await expect(page.get_by_text("Decoded, not verified:")).to_be_visible()
    access = page.locator("section[aria-labelledby=access-token] > dl.claims")
    await expect(access.locator("dt:text-is('client_id') + dd")).to_contain_text("demo-app")
    await expect(access.locator("dt:text-is('scope') + dd")).to_contain_text("notes:write")
    await expect(access.locator("dt:text-is('iss') + dd")).to_contain_text(demo.base)
    # The page's own script runs under its CSP: the expiry counts down.
    await expect(page.locator("[data-countdown]")).to_have_text(re.compile(r"\(in \d+:\d\d\)"))

    await press(page, "Create a note")
    await expect(page.locator("#answer-title")).to_have_text("Create a note: allowed")
    await expect(answer).to_contain_text("201 Created")
    await expect(answer).to_contain_text('"title": "Hello from the demo app"')
    answered = await answer.locator(".exchange pre").last.inner_text()
    assert "db_shard" not in answered, "internal fields are cut from the answer"
    assert "owner" not in answered

    await press(page, "Read my note")
    await expect(answer).to_contain_text("200 OK")
    await expect(answer).to_contain_text("Hello from the demo app")

    await press(page, "Read another user's note")
    await expect(page.locator("#answer-title")).to_have_text("Read another user's note: refused")
    await expect(answer).to_contain_text("404 Not Found")
    assert "Not yours" not in await answer.inner_text(), "the other user's note stays theirs"

    await press(page, "Call an undeclared path")
    await expect(page.locator("#answer-title")).to_have_text("Call an undeclared path: refused")
    await expect(answer).to_contain_text(f"GET {demo.base}/api/debug/config")
    await expect(answer).to_contain_text("404 Not Found")
    assert "hunter2" not in await page.content()
    assert violations == []

    # The same page, with axe injected (which the page's CSP would refuse).
    review = await browser.new_context(viewport=PHONE, bypass_csp=True)
    await review.add_cookies(await phone.cookies())  # type: ignore[arg-type]
    reviewed = await review.new_page()
    await reviewed.goto(f"{demo.app}/")
    await expect(reviewed.get_by_role("heading", name="Signed in", exact=True)).to_be_visible()
    await check_page(reviewed, "demo-app")
    await review.close()

    terminal = demo.output()
    assert '"POST /api/notes HTTP/1.1" 201' in terminal, "the access log is on"
    assert '"GET /api/debug/config HTTP/1.1" 404' in terminal
    assert f"{demo.base}/account" in terminal
    assert f"127.0.0.1:{demo.port}" not in terminal, "Bastion's address is the issuer's"
    assert "/actions" not in terminal, "only requests that reach Bastion are logged"
    assert not JWT.search(terminal)
    assert not REFRESH_TOKEN.search(terminal)


async def test_refresh_rotates_reuse_revokes_the_family_and_revocation_ends_access(
    phone: BrowserContext, demo: RunningDemo
) -> None:
    page = await phone.new_page()
    await sign_in(page, demo)
    answer = page.locator("#answer")

    await press(page, "Refresh the tokens")
    await expect(page.locator("#answer-title")).to_have_text("Refresh the tokens: allowed")
    await expect(page.get_by_text("rotated 1 time.")).to_be_visible()

    await press(page, "Reuse the spent refresh token")
    await expect(page.locator("#answer-title")).to_have_text(
        "Reuse the spent refresh token: refused"
    )
    statuses = await answer.locator(".status").all_inner_texts()
    assert statuses == ["400 Bad Request", "400 Bad Request", "401 Unauthorized"]
    await expect(answer).to_contain_text('"error": "invalid_grant"')
    await expect(page.get_by_role("link", name="Sign in with Bastion")).to_be_visible()

    # Signing in again: Bastion's session remains (no password); consent is asked again,
    # as always for a loopback redirect URI, which cannot prove the app (RFC 8252 §8.6).
    await page.get_by_role("link", name="Sign in with Bastion").click()
    await page.get_by_role("button", name="Allow").click()
    await page.wait_for_url(f"{demo.app}/#answer")
    await press(page, "Revoke (sign out)")
    statuses = await answer.locator(".status").all_inner_texts()
    assert statuses == ["200 OK", "401 Unauthorized"]
    await expect(answer).to_contain_text("www-authenticate")
