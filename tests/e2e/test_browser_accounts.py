"""Sign-in and the account page in a real browser (Chromium) against ``bastion serve``."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyotp
from playwright.async_api import Browser, BrowserContext, Page, Route, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from bastion.accounts.stepup import Requirement, challenge
from tests.e2e.conftest import (
    ACR_MFA,
    ACR_PASSWORD,
    ACR_PHISHING_RESISTANT,
    PASSWORD,
    App,
    Attacker,
    Server,
    add_authenticator,
    allow,
    claims_of,
    enrol_totp,
    enter_code,
    enter_password,
    new_context,
    next_code,
    open_account,
    session_cookie,
)


def path_is(path: str) -> Callable[[str], bool]:
    return lambda url: urlsplit(url).path == path


def wrong_code(secret: str) -> str:
    """Six digits that are not the code of any step the server could accept now."""
    totp, now = pyotp.TOTP(secret), time.time()
    valid = {totp.at(now + offset) for offset in (-60, -30, 0, 30, 60)}
    return next(code for code in ("000000", "111111", "222222") if code not in valid)


# --- 1. code + PKCE with a second factor ----------------------------------------------------


async def test_code_flow_with_password_then_totp(
    server: Server, context: BrowserContext, page: Page, app: App, username: str
) -> None:
    """RFC 6749 §4.1 authorization code with PKCE (RFC 7636 §4.1-4.6): an app asks for
    ``acr_values=urn:bastion:acr:mfa`` (OpenID Connect Core §3.1.2.1), so after the password
    Bastion asks for a TOTP code (RFC 6238); the tokens say how the user signed in
    (RFC 9068 §2.2.1 acr/amr, RFC 8176 §2 ``pwd`` and ``otp``)."""
    await open_account(page, server, username)
    secret = await enrol_totp(page)
    await context.clear_cookies()

    await page.goto(app.authorize_url(acr_values=ACR_MFA))
    await page.wait_for_url(path_is("/login"))
    await enter_password(page, username)
    await page.wait_for_url(path_is("/login/verify"))
    await enter_code(page, next_code(secret))
    await allow(page)
    tokens = await app.token(await app.code(page))

    access = claims_of(tokens["access_token"])
    assert access["acr"] == ACR_MFA
    assert {"otp", "pwd"} <= set(access["amr"])
    identity = claims_of(tokens["id_token"])
    assert identity["acr"] == ACR_MFA
    assert {"otp", "pwd"} <= set(identity["amr"])


# --- 2. TOTP enrolment ----------------------------------------------------------------------


async def test_totp_enrolment_from_the_account_page(
    server: Server, page: Page, username: str
) -> None:
    """RFC 6238 enrolment: the shared secret is shown as a key and a QR code of the Key URI;
    a first valid code confirms it, a wrong one enrols nothing (§5.2 validation), and the ten
    recovery codes are shown once (NIST SP 800-63B §5.1.2: look-up secrets)."""
    await open_account(page, server, username)
    await expect(page.get_by_text("Add a second step to your sign-in")).to_be_visible()

    await page.get_by_role("button", name="Set up an authenticator app").click()
    secret = (await page.locator("#totp-secret").inner_text()).strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    assert "<svg" in await page.locator("figure").inner_html()
    await expect(page.get_by_role("img", name="QR code")).to_be_visible()

    await page.get_by_label("Code").fill(wrong_code(secret))
    await page.get_by_role("button", name="Confirm").click()
    await expect(page.get_by_role("alert")).to_contain_text("That code is not right")
    await expect(page.locator("#recovery-codes")).to_have_count(0)
    await page.goto(f"{server.base}/account")
    await expect(page.get_by_role("button", name="Set up an authenticator app")).to_be_visible()
    await expect(page.get_by_text("An authenticator app is set up")).to_have_count(0)

    await page.get_by_role("button", name="Set up an authenticator app").click()
    fresh = (await page.locator("#totp-secret").inner_text()).strip()
    assert fresh != secret, "starting again makes a new secret"
    await page.get_by_label("Code").fill(pyotp.TOTP(fresh).now())
    await page.get_by_role("button", name="Confirm").click()
    codes = [c.strip() for c in await page.locator("#recovery-codes li").all_inner_texts()]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert all(codes)

    await page.goto(f"{server.base}/account")
    await expect(page.get_by_text("An authenticator app is set up.")).to_contain_text(
        "10 recovery codes left"
    )
    await expect(page.get_by_role("button", name="Set up an authenticator app")).to_have_count(0)
    await expect(page.locator("#recovery-codes")).to_have_count(0)
    for code in codes:
        await expect(page.locator("main")).not_to_contain_text(code)


# --- 3. passkeys ----------------------------------------------------------------------------


async def test_passkey_registration_and_username_less_sign_in(
    server: Server, context: BrowserContext, page: Page, app: App, username: str
) -> None:
    """WebAuthn Level 3: a discoverable credential registered on the account page
    (§5.1.3) signs in without a username (§5.1.4, empty allowCredentials) and reaches the
    phishing-resistant level (RFC 8176 §2 ``hwk``, ``user``). User verification is required
    (§6.2.3): without it the browser refuses the ceremony, and an assertion made without it
    (the options weakened on the way) is refused by the server; either way nobody is signed
    in."""
    authenticator = await add_authenticator(context, page)
    await open_account(page, server, username)
    await page.get_by_label("Passkey name").fill("Test laptop")
    await page.get_by_role("button", name="Add a passkey").click()
    await expect(page.locator("[data-passkey]")).to_contain_text("Test laptop")
    assert len(await authenticator.credentials()) == 1

    await context.clear_cookies()
    await page.goto(app.authorize_url())
    await page.wait_for_url(path_is("/login"))
    login_url = page.url

    await authenticator.set_user_verified(False)
    # The options require user verification, so the browser itself refuses the ceremony.
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await expect(page.locator("#passkey-error")).to_have_text(
        "The passkey was not used. Try again."
    )
    await expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_enabled()

    # A client that weakens the options gets an assertion without the UV flag, which the
    # server refuses (WebAuthn §7.2 step 17).
    async def without_uv(route: Route) -> None:
        original = await route.fetch()
        options = await original.json()
        assert options["userVerification"] == "required"
        options["userVerification"] = "discouraged"
        await route.fulfill(response=original, body=json.dumps(options))

    await page.route(f"{server.base}/login/passkey/options", without_uv)
    async with page.expect_response(f"{server.base}/login/passkey") as refused:
        await page.get_by_role("button", name="Sign in with a passkey").click()
    assert (await refused.value).status == 400
    await expect(page.locator("#passkey-error")).to_have_text("the passkey could not be verified")
    await page.unroute(f"{server.base}/login/passkey/options")
    assert page.url == login_url
    assert await session_cookie(context) is None

    await authenticator.set_user_verified(True)
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await allow(page)
    tokens = await app.token(await app.code(page))

    access = claims_of(tokens["access_token"])
    assert access["acr"] == ACR_PHISHING_RESISTANT
    assert {"hwk", "user"} <= set(access["amr"])
    assert "pwd" not in access["amr"]
    async with httpx.AsyncClient(timeout=10) as http:
        userinfo = await http.get(
            f"{server.base}/userinfo",
            headers={"authorization": f"Bearer {tokens['access_token']}"},
        )
    assert userinfo.json()["preferred_username"] == username


# --- 4. step-up -----------------------------------------------------------------------------


def protected_resource(requirement: Requirement) -> Starlette:
    """A resource server that needs ``requirement`` and answers RFC 9470 §3 challenges."""

    async def orders(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return Response(status_code=401, headers={"www-authenticate": "Bearer"})
        claims: Mapping[str, Any] = claims_of(token)
        header = challenge(claims, requirement, time.time())
        if header is not None:
            return Response(status_code=401, headers={"www-authenticate": header})
        return JSONResponse({"orders": [], "acr": claims["acr"]})

    return Starlette(routes=[StarletteRoute("/orders", orders)])


async def call(resource: Starlette, access_token: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=resource)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.test") as http:
        return await http.get("/orders", headers={"authorization": f"Bearer {access_token}"})


async def current_session(page: Page, server: Server) -> str | None:
    """The id of the browser's own session, as the account page lists it."""
    await page.goto(f"{server.base}/account")
    row = page.locator('tr[data-session="current"] input[name="session_id"]')
    return await row.get_attribute("value")


async def test_step_up_after_a_resource_challenge(
    server: Server, context: BrowserContext, page: Page, app: App, username: str
) -> None:
    """RFC 9470: a token from a password sign-in meets a resource that needs ``mfa``; the
    resource answers 401 ``insufficient_user_authentication`` with ``acr_values`` (§3), the
    app asks again with those ``acr_values`` (§4), and Bastion, seeing the signed-in
    session, asks only for the missing factor before issuing a token that passes."""
    await open_account(page, server, username)
    secret = await enrol_totp(page)
    await context.clear_cookies()

    await page.goto(app.authorize_url())
    await enter_password(page, username)
    await allow(page)
    first = await app.token(await app.code(page))
    assert claims_of(first["access_token"])["acr"] == ACR_PASSWORD
    session_id, cookie = await current_session(page, server), await session_cookie(context)

    resource = protected_resource(Requirement(acr=ACR_MFA))
    refused = await call(resource, first["access_token"])
    assert refused.status_code == 401
    header = refused.headers["www-authenticate"]
    assert header.startswith("Bearer ")
    assert 'error="insufficient_user_authentication"' in header
    assert f'acr_values="{ACR_MFA}"' in header
    asked = re.search(r'acr_values="([^"]+)"', header)
    assert asked is not None

    await page.goto(app.authorize_url(acr_values=asked.group(1)))
    await page.wait_for_url(path_is("/login/verify"))
    await expect(page.get_by_label("Password")).to_have_count(0)
    await enter_code(page, next_code(secret))
    await allow(page)
    second = await app.token(await app.code(page))

    stepped = claims_of(second["access_token"])
    assert stepped["acr"] == ACR_MFA
    assert {"otp", "pwd"} <= set(stepped["amr"])
    assert stepped["sub"] == claims_of(first["access_token"])["sub"]
    accepted = await call(resource, second["access_token"])
    assert accepted.status_code == 200, accepted.headers
    assert accepted.json()["acr"] == ACR_MFA
    # The session was raised, not replaced, under a new cookie value (OWASP ASVS V3.2.1).
    assert await current_session(page, server) == session_id
    assert await session_cookie(context) not in (None, cookie)


# --- 5. session revocation ------------------------------------------------------------------


async def test_revoking_a_session_ends_its_refresh_tokens(
    server: Server, browser: Browser, page: Page, app: App, username: str
) -> None:
    """Signing out another session from the account page revokes the refresh tokens obtained
    through it; the app's next refresh is refused with ``invalid_grant`` (RFC 6749 §5.2,
    RFC 7009 §2.1 revocation of the grant)."""
    await page.goto(app.authorize_url())
    await enter_password(page, username)
    await allow(page)
    tokens = await app.token(await app.code(page))
    refreshed = await app.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    refresh_token = refreshed.json()["refresh_token"]

    laptop = await new_context(browser, server)
    try:
        account = await laptop.new_page()
        await open_account(account, server, username)
        await expect(account.locator("tr[data-session]")).to_have_count(2)
        other = account.locator('tr[data-session="other"]')
        await other.get_by_role("button", name="Sign out this session").click()
        await account.wait_for_url(f"{server.base}/account")
        await expect(account.locator("tr[data-session]")).to_have_count(1)
        await expect(account.locator('tr[data-session="current"]')).to_have_count(1)
    finally:
        await laptop.close()

    answer = await app.refresh(refresh_token)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_grant"
    # The revoked session no longer signs the first browser in either.
    await page.goto(f"{server.base}/account")
    await page.wait_for_url(path_is("/login"))


# --- 6. clickjacking ------------------------------------------------------------------------


async def test_login_page_cannot_be_framed(
    server: Server, page: Page, app: App, attacker: Attacker
) -> None:
    """Clickjacking defence: the login page forbids framing with ``X-Frame-Options: DENY``
    (RFC 7034 §2.1) and CSP ``frame-ancestors 'none'`` (CSP Level 3 §6.4.2), so a page on
    another origin that frames it shows nothing of it, while a frameable page next to it
    renders."""
    response = await page.goto(app.authorize_url())
    await page.wait_for_url(path_is("/login"))
    assert response is not None
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    login_url = page.url

    attacker.pages["/harmless"] = "<p id=harmless>framed fine</p>"
    attacker.pages["/evil"] = (
        f'<iframe name="target" src="{login_url}"></iframe>'
        '<iframe name="control" src="/harmless"></iframe>'
    )
    console: list[str] = []
    failures: list[str | None] = []
    page.on("console", lambda message: console.append(message.text))
    page.on("requestfailed", lambda r: failures.append(r.failure) if r.url == login_url else None)
    async with page.expect_response(lambda r: r.url == login_url) as framed:
        await page.goto(f"{attacker.origin}/evil")
    answer = await framed.value
    assert answer.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    # Chromium blocked the frame because of the response's headers, and says so.
    assert failures == ["net::ERR_BLOCKED_BY_RESPONSE"]
    assert any("frame-ancestors 'none'" in line for line in console), console

    control = page.frame(name="control")
    assert control is not None
    await expect(control.locator("#harmless")).to_have_text("framed fine")

    target = page.frame(name="target")
    assert target is not None
    # goto waited for the load event, which waits for the frames: the target's navigation
    # ended on Chromium's error page instead of the login form.
    assert target.url.startswith("chrome-error://"), target.url
    assert await target.locator("form, input, #username").count() == 0
    assert "Sign in" not in await target.content()


# --- 7. CSRF --------------------------------------------------------------------------------


async def test_cross_site_login_post_is_refused(
    server: Server,
    context: BrowserContext,
    page: Page,
    app: App,
    username: str,
    attacker: Attacker,
) -> None:
    """Login CSRF (RFC 6749 §10.12, RFC 9700 §4.7, OWASP CSRF cheat sheet): a form on
    another site that posts valid credentials (the attacker's own) to /login, for an
    interaction the victim's browser has open, is refused and signs nobody in: the
    SameSite=Lax interaction cookie does not travel with a cross-site POST and the form has
    no valid CSRF token. With the cookie but a forged token, it is refused too."""
    await page.goto(app.authorize_url())
    await page.wait_for_url(path_is("/login"))
    interaction = await page.locator('input[name="interaction"]').get_attribute("value")
    assert interaction

    attacker.pages["/evil"] = (
        f'<form id="f" method="post" action="{server.base}/login">'
        f'<input name="interaction" value="{interaction}">'
        f'<input name="csrf" value="{"0" * 64}">'
        f'<input name="username" value="{username}">'
        f'<input name="password" value="{PASSWORD}"></form>'
        # The attacker's own page may run script; Bastion's CSP does not apply there.
        "<script>document.getElementById('f').submit()</script>"
    )
    async with page.expect_response(
        lambda r: r.url == f"{server.base}/login" and r.request.method == "POST"
    ) as posted:
        await page.goto(f"{attacker.origin}/evil")
    assert (await posted.value).status == 400
    # No interaction cookie came with the cross-site POST: the page explains an expired
    # sign-in or another browser, and what to do next.
    await expect(page.get_by_role("heading", name="This sign-in has expired")).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text("the browser that started it")
    assert await session_cookie(context) is None

    # Same browser, on Bastion's own page (the cookie travels), with a forged token.
    await page.goto(app.authorize_url())
    await page.wait_for_url(path_is("/login"))
    await page.locator('input[name="csrf"]').evaluate("input => { input.value = 'f'.repeat(64) }")
    await enter_password(page, username)
    await expect(page.get_by_role("heading", name="This sign-in has expired")).to_be_visible()
    await expect(page.locator("details")).to_contain_text("the form expired; sign in again")
    assert await session_cookie(context) is None
