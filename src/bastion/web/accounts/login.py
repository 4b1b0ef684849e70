"""The sign-in pages: /login (password or passkey) and /login/verify (second factor).

Both pages work without JavaScript except the passkey button, which WebAuthn itself needs.
Every POST checks the interaction's CSRF token; every answer to a POST that moves on is a
303 (RFC 9700 §4.12).
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bastion.accounts.records import BrowserSession
from bastion.audit import AuditEvent, Outcome
from bastion.authserver.browser import Browser, Interaction
from bastion.authserver.signin import (
    PASSKEY,
    TOTP,
    Authenticated,
    Failed,
    NeedsSecondFactor,
    SignIn,
)
from bastion.errors import OAuthError
from bastion.web.oauth.answers import error_page, page_route, redirect_error
from bastion.web.oauth.authorize import after_login
from bastion.web.oauth.interactions import PageRequest, page_request
from bastion.web.pages import page


def client_ip(request: Request) -> str:
    # The server resolves X-Forwarded-For only from declared trusted proxies, so this is
    # the peer or what a trusted proxy vouched for.
    return request.client.host if request.client else "unknown"


def _title(found: PageRequest) -> str:
    if found.client is None:
        return "your account"
    return found.client.name or found.client.client_id


def login_page(
    found: PageRequest, *, message: str = "", username: str = "", status: int = 200
) -> Response:
    return page(
        "login.html",
        status,
        view=found.view,
        client_name=_title(found),
        interaction=found.interaction_id,
        csrf=found.browser.csrf_token(found.interaction_id, found.nonce),
        message=message,
        username=username[:200],
    )


async def verify_page(found: PageRequest, *, message: str = "", status: int = 200) -> Response:
    interaction = found.interaction
    server = found.browser.server
    user = await server.users.get(interaction.pending_subject or "")
    if user is None:
        return error_page(
            found.browser, OAuthError("invalid_request", "sign in again from the start"), found.view
        )
    methods = await SignIn(server).second_factors(user, SignIn.required_level(interaction, user))
    return page(
        "verify.html",
        status,
        view=found.view,
        interaction=found.interaction_id,
        csrf=found.browser.csrf_token(found.interaction_id, found.nonce),
        message=message,
        totp=TOTP in methods,
        passkey=PASSKEY in methods,
    )


def _csrf_refused(found: PageRequest) -> Response:
    return error_page(
        found.browser, OAuthError("invalid_request", "the form expired; sign in again"), found.view
    )


async def login(browser: Browser, request: Request) -> Response:
    found = await page_request(browser, request)
    if request.method != "POST":
        return login_page(found)
    if not browser.csrf_ok(found.interaction_id, found.nonce, found.values.get("csrf")):
        return _csrf_refused(found)
    username = found.values.get("username") or ""
    trusted = browser.device_trusted(request.cookies.get(browser.cookies.device), username)
    outcome = await SignIn(browser.server).password(
        found.interaction,
        username,
        found.values.get("password") or "",
        client_ip(request),
        device_trusted=trusted,
    )
    return await advance(request, found, outcome, username=username)


async def verify(browser: Browser, request: Request) -> Response:
    found = await page_request(browser, request)
    if found.interaction.pending_subject is None:
        return RedirectResponse(_path("/login", found.interaction_id), status_code=303)
    if request.method != "POST":
        return await verify_page(found)
    if not found.browser.csrf_ok(found.interaction_id, found.nonce, found.values.get("csrf")):
        return _csrf_refused(found)
    outcome = await SignIn(found.browser.server).code(
        found.interaction, found.values.get("code") or "", client_ip(request)
    )
    return await advance(request, found, outcome)


def _path(path: str, interaction_id: str) -> str:
    return f"{path}?{urlencode({'interaction': interaction_id})}"


async def advance(
    request: Request,
    found: PageRequest,
    outcome: Failed | NeedsSecondFactor | Authenticated,
    *,
    username: str = "",
) -> Response:
    """The response to one sign-in step: the page again, the next factor, or done."""
    browser, interaction = found.browser, found.interaction
    if isinstance(outcome, Failed):
        if outcome.status == 403 and outcome.to_app and interaction.request is not None:
            # The level cannot be reached with this account's factors: the app learns so
            # (OpenID Connect unmet_authentication_requirements).
            await browser.finish(interaction.interaction_id)
            return redirect_error(
                browser,
                interaction.request.redirect_uri,
                OAuthError("unmet_authentication_requirements", outcome.message),
                interaction.request.state,
            )
        if interaction.pending_subject is not None:
            return await verify_page(found, message=outcome.message, status=outcome.status)
        response = login_page(
            found, message=outcome.message, username=username, status=outcome.status
        )
        if outcome.retry_after:
            response.headers["retry-after"] = str(max(1, round(outcome.retry_after)))
        return response
    if isinstance(outcome, NeedsSecondFactor):
        await browser.update(
            interaction, pending_subject=outcome.user.user_id, pending_amr=outcome.amr
        )
        return RedirectResponse(_path("/login/verify", found.interaction_id), status_code=303)
    return await complete(request, found, outcome)


async def complete(request: Request, found: PageRequest, outcome: Authenticated) -> Response:
    """Create (or raise, for step-up) the session, then continue where sign-in began."""
    browser, interaction = found.browser, found.interaction
    cookie_and_session = None
    if interaction.upgrade_session is not None:
        cookie_and_session = await browser.elevate_session(
            interaction.upgrade_session, outcome.acr, outcome.amr
        )
    if cookie_and_session is None:
        cookie_and_session = await browser.create_session(
            outcome.user, outcome.acr, outcome.amr, request.headers.get("user-agent", "")
        )
    cookie, session = cookie_and_session
    browser.server.audit.emit(
        AuditEvent(
            "login.succeeded",
            Outcome.SUCCESS,
            actor="browser",
            details={
                "subject": outcome.user.user_id,
                "acr": outcome.acr,
                "amr": list(outcome.amr),
                "client_id": interaction.request.client_id if interaction.request else None,
                "step_up": interaction.upgrade_session is not None,
            },
        )
    )
    response = await _continue(found, interaction, session)
    browser.set_cookie(response, browser.cookies.session, cookie)
    browser.set_cookie(
        response,
        browser.cookies.device,
        browser.device_cookie(outcome.user.username),
        max_age=int(browser.server.settings.accounts.device_cookie_lifetime),
    )
    return response


async def _continue(
    found: PageRequest, interaction: Interaction, session: BrowserSession
) -> Response:
    browser: Browser = found.browser
    if interaction.request is not None and found.client is not None:
        return await after_login(
            browser,
            found.client,
            interaction.request,
            session,
            interaction.interaction_id,
            found.nonce,
        )
    await browser.finish(interaction.interaction_id)
    response = RedirectResponse(interaction.return_to or "/account", status_code=303)
    browser.clear_cookie(response, browser.cookies.interaction)
    return response


def routes(browser: Browser) -> list[Route]:
    return [
        page_route("/login", login, browser, ["GET", "POST"]),
        page_route("/login/verify", verify, browser, ["GET", "POST"]),
    ]
