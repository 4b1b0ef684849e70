"""What people see: every page at phone and desktop size in the system Chromium, checked
by axe-core (WCAG 2.2 AA: zero serious or critical violations), in English and German,
with the app's branding and scope descriptions.

Screenshots of each page land in ``test-artifacts/pages/`` (not compared pixel by pixel:
they are for people reviewing a change).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from tests.e2e.conftest import (
    BRAND_ACCENT,
    BRAND_LOGO,
    BRAND_POLICY,
    BRAND_TERMS,
    CLIENT_ID,
    CLIENT_NAME,
    PASSWORD,
    App,
    Server,
    allow,
    enter_password,
    new_context,
    open_account,
)
from tests.support.services import unavailable

AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "pages"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# A 1x1 PNG, the app's logo as its CDN would serve it.
LOGO_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5f6e1a90000000049454e44ae426082"
)


def _axe_source() -> str:
    if not AXE.exists():
        unavailable("axe-core", f"{AXE} is missing", hint="npm ci --prefix tests/e2e/axe")
    return AXE.read_text()


async def sized_context(
    browser: Browser, server: Server, viewport: dict[str, int], locale: str = "en-US"
) -> BrowserContext:
    """A browser profile of one size; axe is injected, so the page's CSP is bypassed for
    the test's own script only (Bastion's CSP is asserted separately below)."""
    context = await new_context(browser, server, viewport=viewport, locale=locale, bypass_csp=True)

    async def logo(route: Route) -> None:
        await route.fulfill(status=200, content_type="image/png", body=LOGO_PNG)

    await context.route(BRAND_LOGO, logo)
    return context


async def check_page(page: Page, name: str) -> None:
    """axe-core finds no serious or critical violation; the page fits the viewport."""
    await page.add_script_tag(content=_axe_source())
    result: dict[str, Any] = await page.evaluate(
        "() => axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})"
    )
    serious = [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["html"] for n in v["nodes"]][:3]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    width = page.viewport_size["width"] if page.viewport_size else 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    assert serious == [], json.dumps(serious, indent=1)
    # No sideways scrolling on a phone: everything wraps or stacks.
    overflow = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name} is {overflow}px wider than the screen"


async def touch_targets(page: Page) -> list[str]:
    """Visible buttons and inputs smaller than 44 px, or text inputs under 16 px."""
    small: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll('button, input:not([type=hidden]), a.button')]
          .filter(e => e.offsetParent !== null)
          .flatMap(e => {
            const box = e.getBoundingClientRect();
            const size = parseFloat(getComputedStyle(e).fontSize);
            const out = [];
            if (box.height < 44) out.push(`${e.outerHTML.slice(0, 60)} is ${box.height}px high`);
            if (e.tagName === 'INPUT' && size < 16) out.push(`${e.id} has ${size}px text`);
            return out;
          })"""
    )
    return small


@pytest_asyncio.fixture(params=[PHONE, DESKTOP], ids=["phone", "desktop"], loop_scope="session")
async def sized(
    request: pytest.FixtureRequest, browser: Browser, server: Server
) -> AsyncIterator[BrowserContext]:
    context = await sized_context(browser, server, request.param)
    yield context
    await context.close()


async def test_every_page_is_accessible_and_fits(
    sized: BrowserContext, server: Server, app: App, username: str
) -> None:
    page = await sized.new_page()
    # Sign-in, with a wrong password first: the error page state is checked too.
    await page.goto(app.authorize_url())
    await check_page(page, "login")
    assert await touch_targets(page) == []
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("incorrect")
    await check_page(page, "login-error")
    await enter_password(page, username)
    await expect(page.get_by_role("heading", name=f"{CLIENT_NAME} wants to access")).to_be_visible()
    await check_page(page, "consent")
    assert await touch_targets(page) == []
    await allow(page)
    await app.code(page)
    # The account page, with its tables as cards on a phone.
    await page.goto(f"{server.base}/account")
    await expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    await check_page(page, "account")
    assert await touch_targets(page) == []
    await page.goto(f"{server.base}/logout")
    await check_page(page, "logout")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    await check_page(page, "logged-out")
    await page.goto(f"{server.base}/recover?ticket=not-a-ticket")
    await check_page(page, "recover-invalid")
    await page.goto(f"{server.base}/authorize?{urlencode({'client_id': 'no-such-app'})}")
    await check_page(page, "error-unknown-client")


async def test_focus_goes_to_the_first_field_in_error(
    page: Page, server: Server, app: App, username: str
) -> None:
    await page.goto(app.authorize_url())
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    field = page.get_by_label("Username")
    await expect(field).to_be_focused()
    await expect(field).to_have_attribute("aria-invalid", "true")
    # The error is tied to the field: its accessible description is the message.
    described = await field.get_attribute("aria-describedby")
    assert described
    await expect(page.locator(f"#{described}")).to_contain_text("incorrect")


async def test_the_stylesheet_is_fingerprinted_and_cached(page: Page, server: Server) -> None:
    answer = await page.goto(f"{server.base}/login")
    assert answer is not None
    href = await page.locator("link[rel=stylesheet]").first.get_attribute("href")
    assert href is not None
    assert re.fullmatch(r"/static/bastion\.[0-9a-f]{16}\.css", href)
    sheet = await page.request.get(f"{server.base}{href}")
    assert sheet.status == 200
    assert "immutable" in sheet.headers["cache-control"]
    assert sheet.headers["content-type"].startswith("text/css")
    # The page itself may not run inline styles or scripts (the CSP is unchanged).
    policy = (await answer.all_headers())["content-security-policy"]
    assert "style-src 'self'" in policy
    assert "unsafe-inline" not in policy


async def test_dark_mode_follows_the_system(browser: Browser, server: Server) -> None:
    colours = []
    for scheme in ("light", "dark"):
        context = await browser.new_context(color_scheme=scheme)
        page = await context.new_page()
        await page.goto(f"{server.base}/login")
        colours.append(await page.evaluate("getComputedStyle(document.body).backgroundColor"))
        await context.close()
    assert colours[0] != colours[1]


async def test_pages_speak_the_language_the_app_asks_for(
    browser: Browser, server: Server, app: App, username: str
) -> None:
    # OIDC Core §3.1.2.1: ui_locales wins over the browser's English.
    context = await sized_context(browser, server, PHONE, locale="en-US")
    page = await context.new_page()
    await page.goto(app.authorize_url(scope="openid notes:read") + "&ui_locales=de-CH%20en")
    await expect(page.get_by_role("heading", name=f"Bei {CLIENT_NAME} anmelden")).to_be_visible()
    assert await page.locator("html").get_attribute("lang") == "de"
    await page.get_by_label("Benutzername").fill(username)
    await page.get_by_label("Passwort").fill("falsch")
    await page.get_by_role("button", name="Anmelden", exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text("Benutzername oder Passwort ist falsch.")
    await page.get_by_label("Passwort").fill(PASSWORD)
    await page.get_by_role("button", name="Anmelden", exact=True).click()
    await expect(
        page.get_by_role("heading", name=f"{CLIENT_NAME} möchte auf Ihr Konto zugreifen")
    ).to_be_visible()
    # Scope descriptions in German: configured for notes:read, built in for openid.
    await expect(page.locator("[data-scope='notes:read']")).to_contain_text("Ihre Notizen lesen")
    await expect(page.locator("[data-scope='openid']")).to_contain_text("Bestätigen, wer Sie sind")
    await check_page(page, "consent-de")
    await page.get_by_role("button", name="Erlauben").click()
    await app.code(page)
    await context.close()


async def test_the_browser_language_is_used_without_ui_locales(
    browser: Browser, server: Server, username: str
) -> None:
    context = await sized_context(browser, server, DESKTOP, locale="de-DE")
    page = await context.new_page()
    await page.goto(f"{server.base}/account")
    await expect(page.get_by_role("heading", name="Anmelden")).to_be_visible()
    await page.get_by_label("Benutzername").fill(username)
    await page.get_by_label("Passwort").fill(PASSWORD)
    await page.get_by_role("button", name="Anmelden", exact=True).click()
    await expect(page.get_by_role("heading", name="Ihr Konto")).to_be_visible()
    await expect(page.get_by_role("heading", name="Sitzungen")).to_be_visible()
    await check_page(page, "account-de")
    await context.close()


async def test_sessions_read_as_people_say_them(page: Page, server: Server, username: str) -> None:
    await open_account(page, server, username)
    current = page.locator("tr[data-session=current]")
    # Playwright's headless Chromium on Linux.
    await expect(current.locator("td").first).to_contain_text("Chrome on Linux")
    await expect(current).to_contain_text("this browser")
    # The raw User-Agent stays available, folded away.
    await expect(current.locator("details code")).to_contain_text("Mozilla/5.0")
    for value in await current.locator("time").evaluate_all(
        "times => times.map(t => t.getAttribute('datetime'))"
    ):
        # A valid HTML date-time: ISO 8601 with an offset, not epoch seconds.
        assert datetime.fromisoformat(value).tzinfo is not None
    await expect(current.locator("time").first).to_contain_text(re.compile(r"now|second|minute"))


async def test_branding_and_scope_descriptions_are_shown(
    sized: BrowserContext, server: Server, app: App, username: str
) -> None:
    page = await sized.new_page()
    await page.goto(app.authorize_url(scope="openid notes:read"))
    logo = page.locator("header.brand img")
    await expect(logo).to_have_attribute("src", BRAND_LOGO)
    assert await logo.evaluate("img => img.complete && img.naturalWidth > 0")
    await expect(
        page.get_by_role("link", name=f"Privacy policy of {CLIENT_NAME}")
    ).to_have_attribute("href", BRAND_POLICY)
    await expect(page.get_by_role("link", name=f"Terms of {CLIENT_NAME}")).to_have_attribute(
        "href", BRAND_TERMS
    )
    # The accent colour reaches the primary button through its own stylesheet.
    button = page.get_by_role("button", name="Sign in", exact=True)
    background = await button.evaluate("b => getComputedStyle(b).backgroundColor")
    red, green, blue = (int(BRAND_ACCENT[i : i + 2], 16) for i in (1, 3, 5))
    assert background == f"rgb({red}, {green}, {blue})"
    await enter_password(page, username)
    scope = page.locator("[data-scope='notes:read']")
    await expect(scope).to_contain_text("Read your notes")
    await allow(page)
    await app.code(page)
    await page.goto(f"{server.base}/account")
    await expect(
        page.locator(f"tr[data-app='{CLIENT_ID}'] [data-scope='notes:read']")
    ).to_have_text("Read your notes")


async def test_a_logo_origin_is_allowed_by_the_page_csp_only_where_shown(
    page: Page, server: Server, app: App
) -> None:
    answer = await page.goto(app.authorize_url())
    assert answer is not None
    policy = (await answer.all_headers())["content-security-policy"]
    assert "img-src 'self' data: https://brand.example" in policy
    plain = await page.goto(f"{server.base}/login")
    assert plain is not None
    assert "brand.example" not in (await plain.all_headers())["content-security-policy"]
