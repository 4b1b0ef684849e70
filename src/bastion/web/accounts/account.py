"""The account page: sessions, apps, authenticator app, recovery codes, passkeys.

Every change is a POST carrying a CSRF token bound to the session (OWASP ASVS V3.5), and
changes to sign-in methods need a recent sign-in (``accounts.reauthentication_window``;
ASVS V2.5.x, re-authentication before sensitive changes). Pages that show a secret once
(the TOTP secret, recovery codes) are rendered straight from the POST with ``no-store``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bastion.authserver.accounts import AccountRuleError, Accounts
from bastion.authserver.browser import Browser
from bastion.errors import OAuthError
from bastion.oauth.params import Params, parse
from bastion.store.sql.sessions import BrowserSession
from bastion.store.sql.users import User
from bastion.web.oauth.authorize import error_page, interact
from bastion.web.oauth.common import auth_server, form
from bastion.web.pages import page

ACCOUNT = "/account"


@dataclass(frozen=True)
class AccountRequest:
    browser: Browser
    session: BrowserSession
    user: User
    values: Params

    @property
    def accounts(self) -> Accounts:
        return Accounts(self.browser.server, actor=f"user:{self.user.user_id}")

    @property
    def recent(self) -> bool:
        window = self.browser.server.settings.accounts.reauthentication_window
        return self.browser.clock.now() - self.session.auth_time <= window


async def sign_in(browser: Browser, *, fresh: bool = False) -> Response:
    return await interact(browser, None, "/login", needs_login=fresh, return_to=ACCOUNT)


async def _account_request(request: Request) -> AccountRequest | Response:
    browser = Browser(auth_server(request))
    session = await browser.current(request.cookies.get(browser.cookies.session))
    user = await browser.server.users.get(session.subject) if session else None
    if session is None or user is None:
        return await sign_in(browser)
    values = parse([])
    if request.method == "POST":
        try:
            values = await form(request)
        except OAuthError as exc:
            return error_page(browser, exc)
        if not browser.session_csrf_ok(session, values.get("csrf")):
            return error_page(
                browser, OAuthError("invalid_request", "the form expired; reload the page")
            )
    return AccountRequest(browser, session, user, values)


async def json_body(request: Request) -> dict[str, Any] | None:
    """A JSON object body (the passkey script's requests), or None."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return None
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


async def account_request_json(
    request: Request,
) -> tuple[AccountRequest, dict[str, Any]] | Response:
    """A JSON request from the account page: signed in recently, with the session's CSRF."""
    browser = Browser(auth_server(request))
    session = await browser.current(request.cookies.get(browser.cookies.session))
    user = await browser.server.users.get(session.subject) if session else None
    body = await json_body(request)
    if session is None or user is None:
        return JSONResponse({"error": "sign in again", "redirect": ACCOUNT}, status_code=401)
    csrf = body.get("csrf") if body else None
    if body is None or not browser.session_csrf_ok(
        session, csrf if isinstance(csrf, str) else None
    ):
        return JSONResponse({"error": "the page expired; reload it"}, status_code=403)
    found = AccountRequest(browser, session, user, parse([]))
    if not found.recent:
        return JSONResponse(
            {
                "error": "sign in again to change your passkeys",
                "redirect": "/account/reauthenticate",
            },
            status_code=401,
        )
    return found, body


async def reauthenticate(request: Request) -> Response:
    return await sign_in(Browser(auth_server(request)), fresh=True)


async def account(request: Request) -> Response:
    found = await _account_request(request)
    if isinstance(found, Response):
        return found
    return await render(found)


async def render(found: AccountRequest, *, message: str = "", status: int = 200) -> Response:
    server, user = found.browser.server, found.user
    now = found.browser.clock.now()
    totp = await server.factors.totp(user.user_id)
    families = await server.grants.grants.active_families(user.user_id, now)
    consents = await server.consents.of_subject(user.user_id)
    apps: dict[str, dict[str, object]] = {}
    for client_id in sorted(set(consents) | {f.client_id for f in families}):
        client = await server.clients.get(client_id)
        apps[client_id] = {
            "name": (client.name if client else "") or client_id,
            "scopes": sorted(consents.get(client_id, ())),
            "signed_in": sum(1 for f in families if f.client_id == client_id),
        }
    return page(
        "account.html",
        status,
        user=user,
        message=message,
        csrf=found.browser.csrf_for_session(found.session),
        current=found.session.session_id,
        sessions=await server.sessions.active(user.user_id, now),
        apps=apps,
        totp=totp is not None and totp.confirmed_at is not None,
        codes_left=await server.factors.recovery_codes_left(user.user_id),
        passkeys=await server.factors.passkeys(user.user_id),
        acr=found.session.acr,
    )


async def action(request: Request) -> Response:
    found = await _account_request(request)
    if isinstance(found, Response):
        return found
    name = request.path_params["action"]
    values, accounts, user = found.values, found.accounts, found.user
    if name == "revoke-session":
        await accounts.revoke_session(user.user_id, values.get("session_id") or "")
        if values.get("session_id") == found.session.session_id:
            response = RedirectResponse("/logged-out", status_code=303)
            found.browser.clear_cookie(response, found.browser.cookies.session)
            return response
    elif name == "revoke-app":
        await accounts.revoke_app(user.user_id, values.get("client_id") or "")
    elif not found.recent:
        # Changing how the account signs in needs a fresh proof of who is at the keyboard.
        return await sign_in(found.browser, fresh=True)
    else:
        try:
            return await _sensitive(found, name)
        except AccountRuleError as exc:
            return await render(found, message=str(exc), status=409)
    return RedirectResponse(ACCOUNT, status_code=303)


async def _sensitive(found: AccountRequest, name: str) -> Response:
    accounts, user, values = found.accounts, found.user, found.values
    csrf = found.browser.csrf_for_session(found.session)
    if name == "totp-start":
        enrolment = await accounts.start_totp(user)
        return page("totp_enrol.html", enrolment=enrolment, csrf=csrf, message="")
    if name == "totp-confirm":
        codes = await accounts.confirm_totp(user, values.get("code") or "")
        if codes is None:
            pending = await accounts.pending_totp(user)
            if pending is None:
                return RedirectResponse(ACCOUNT, status_code=303)
            return page(
                "totp_enrol.html",
                400,
                enrolment=pending,
                csrf=csrf,
                message="That code is not right; check the time on your phone and try again.",
            )
        return page("recovery_codes.html", codes=codes)
    if name == "totp-remove":
        await accounts.remove_totp(user)
    elif name == "recovery-codes":
        return page("recovery_codes.html", codes=await accounts.new_recovery_codes(user))
    elif name == "passkey-remove":
        await accounts.remove_passkey(user, values.get("credential_id") or "")
    else:
        return error_page(found.browser, OAuthError("invalid_request", "unknown account action"))
    return RedirectResponse(ACCOUNT, status_code=303)


async def logged_out(request: Request) -> Response:
    return page("logged_out.html")


routes = [
    Route(ACCOUNT, account, methods=["GET"]),
    Route("/account/reauthenticate", reauthenticate, methods=["GET"]),
    Route("/account/{action}", action, methods=["POST"]),
    Route("/logged-out", logged_out, methods=["GET"]),
]
