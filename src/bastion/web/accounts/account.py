"""The account page: sessions, apps, authenticator app, recovery codes, passkeys.

Every change is a POST carrying a CSRF token bound to the session (OWASP ASVS V3.5), and
changes to sign-in methods need a recent sign-in (``accounts.reauthentication_window``;
ASVS V2.5.x, re-authentication before sensitive changes). Pages that show a secret once
(the TOTP secret, recovery codes) are rendered straight from the POST with ``no-store``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial, wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bastion.accounts.records import BrowserSession, User
from bastion.authserver.accounts import Accounts
from bastion.authserver.browser import Browser
from bastion.errors import AccountRuleError, Forbidden, OAuthError, SignInRequired
from bastion.oauth.params import Params, parse
from bastion.texts import Text
from bastion.web.accounts.scripts import string_field
from bastion.web.oauth.answers import PageHandler, page_route
from bastion.web.oauth.authorize import interact
from bastion.web.oauth.common import json_object, page_params
from bastion.web.pages import View, page
from bastion.web.presentation import describe_scopes, view_of

# How the account page names each sign-in policy (bastion.accounts.levels.Policy).
POLICY_LABELS = {
    "password": Text("a password"),
    "mfa": Text("a password and a second step"),
    "passkey": Text("a passkey"),
}

ACCOUNT = "/account"


@dataclass(frozen=True)
class AccountRequest:
    browser: Browser
    session: BrowserSession
    user: User
    values: Params
    view: View

    @property
    def accounts(self) -> Accounts:
        return Accounts(self.browser.server, actor=f"user:{self.user.user_id}")

    @property
    def recent(self) -> bool:
        window = self.browser.server.settings.accounts.reauthentication_window
        return self.browser.clock.now() - self.session.auth_time <= window


async def sign_in(browser: Browser, *, fresh: bool = False) -> Response:
    return await interact(browser, None, "/login", needs_login=fresh, return_to=ACCOUNT)


def account_route(path: str, handler: PageHandler, browser: Browser, methods: list[str]) -> Route:
    """A POST or GET route of the account page: without a signed-in user it sends the
    browser to sign in; an ``OAuthError`` shows the error page."""

    @wraps(handler)
    async def signed_in(browser: Browser, request: Request) -> Response:
        try:
            return await handler(browser, request)
        except SignInRequired:
            return await sign_in(browser)

    return page_route(path, signed_in, browser, methods)


async def _signed_in(request: Request, browser: Browser) -> tuple[BrowserSession, User]:
    session = await browser.current(request.cookies.get(browser.cookies.session))
    user = await browser.server.users.get(session.subject) if session else None
    if session is None or user is None:
        raise SignInRequired("sign in again", extensions={"redirect": ACCOUNT})
    return session, user


async def _account_request(browser: Browser, request: Request) -> AccountRequest:
    session, user = await _signed_in(request, browser)
    values = await page_params(request)
    if request.method == "POST" and not browser.session_csrf_ok(session, values.get("csrf")):
        raise OAuthError("invalid_request", "the form expired; reload the page")
    return AccountRequest(browser, session, user, values, view_of(browser, request))


async def account_request_json(
    browser: Browser, request: Request
) -> tuple[AccountRequest, dict[str, Any]]:
    """A JSON request from the account page: signed in recently, with the session's CSRF."""
    session, user = await _signed_in(request, browser)
    body = await json_object(request)
    if not browser.session_csrf_ok(session, string_field(body, "csrf")):
        raise Forbidden("the page expired; reload it", reason="session CSRF expired")
    found = AccountRequest(browser, session, user, parse([]), view_of(browser, request))
    if not found.recent:
        raise SignInRequired(
            "sign in again to change your passkeys",
            extensions={"redirect": "/account/reauthenticate"},
        )
    return found, body


async def reauthenticate(browser: Browser, _request: Request) -> Response:
    return await sign_in(browser, fresh=True)


async def account(browser: Browser, request: Request) -> Response:
    return await render(await _account_request(browser, request))


async def render(found: AccountRequest, *, message: str = "", status: int = 200) -> Response:
    server, user = found.browser.server, found.user
    now = found.browser.clock.now()
    families = await server.grants.grants.active_families(user.user_id, now)
    consents = await server.consents.of_subject(user.user_id)
    apps: dict[str, dict[str, object]] = {}
    described = server.settings.oauth.scope_descriptions
    for client_id in sorted(set(consents) | {f.client_id for f in families}):
        client = await server.clients.get(client_id)
        apps[client_id] = {
            "name": (client.name if client else "") or client_id,
            "scopes": describe_scopes(
                sorted(consents.get(client_id, ())), found.view.language, described
            ),
            "signed_in": sum(1 for f in families if f.client_id == client_id),
        }
    return page(
        "account.html",
        status,
        view=found.view,
        user=user,
        policy_label=POLICY_LABELS.get(user.auth_policy, user.auth_policy),
        message=message,
        csrf=found.browser.csrf_for_session(found.session),
        current=found.session.session_id,
        sessions=await server.sessions.active(user.user_id, now),
        apps=apps,
        totp=await server.factors.has_totp(user.user_id),
        codes_left=await server.factors.recovery_codes_left(user.user_id),
        passkeys=await server.factors.passkeys(user.user_id),
        acr=found.session.acr,
    )


async def action(browser: Browser, request: Request) -> Response:
    found = await _account_request(browser, request)
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
            # The Text the rule raised, so the page shows it in the reader's language.
            return await render(found, message=exc.args[0], status=409)
    return RedirectResponse(ACCOUNT, status_code=303)


async def _sensitive(found: AccountRequest, name: str) -> Response:
    accounts, user, values = found.accounts, found.user, found.values
    csrf = found.browser.csrf_for_session(found.session)
    if name == "totp-start":
        enrolment = await accounts.start_totp(user)
        return page("totp_enrol.html", view=found.view, enrolment=enrolment, csrf=csrf, message="")
    if name == "totp-confirm":
        codes = await accounts.confirm_totp(user, values.get("code") or "")
        if codes is None:
            pending = await accounts.pending_totp(user)
            if pending is None:
                return RedirectResponse(ACCOUNT, status_code=303)
            return page(
                "totp_enrol.html",
                400,
                view=found.view,
                enrolment=pending,
                csrf=csrf,
                message=Text("That code is not right; check the time on your phone and try again."),
            )
        return page("recovery_codes.html", view=found.view, codes=codes)
    if name == "totp-remove":
        await accounts.remove_totp(user)
    elif name == "recovery-codes":
        codes = await accounts.new_recovery_codes(user)
        return page("recovery_codes.html", view=found.view, codes=codes)
    elif name == "passkey-remove":
        await accounts.remove_passkey(user, values.get("credential_id") or "")
    else:
        raise OAuthError("invalid_request", "unknown account action")
    return RedirectResponse(ACCOUNT, status_code=303)


async def logged_out(browser: Browser, request: Request) -> Response:
    return page("logged_out.html", view=view_of(browser, request))


def routes(browser: Browser) -> list[Route]:
    return [
        account_route(ACCOUNT, account, browser, ["GET"]),
        Route("/account/reauthenticate", partial(reauthenticate, browser), methods=["GET"]),
        account_route("/account/{action}", action, browser, ["POST"]),
        Route("/logged-out", partial(logged_out, browser), methods=["GET"]),
    ]
