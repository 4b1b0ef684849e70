"""Sign-out: OpenID Connect RP-Initiated Logout 1.0 at ``/logout``.

An app sends the browser here with ``id_token_hint``, ``post_logout_redirect_uri`` and
``state``. The post-logout URI must be one of the app's registered redirect URIs (what
Keycloak's "+" setting does), so this endpoint is never an open redirect. Without a hint
that names the signed-in user, the user confirms on a page first (§2: the OP should ask),
so a cross-site link cannot sign anyone out. Signing out ends the browser session and
revokes the refresh-token families obtained through it.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bastion.authserver.accounts import Accounts
from bastion.authserver.browser import Browser
from bastion.errors import OAuthError
from bastion.oauth.params import Params
from bastion.oauth.tokens import verify_id_token_hint
from bastion.web.oauth.answers import page_route
from bastion.web.oauth.common import page_params
from bastion.web.pages import page
from bastion.web.presentation import view_of

FORWARDED = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state")


async def _destination(browser: Browser, params: Params, hint_aud: list[str]) -> str:
    """Where to send the browser afterwards; raises OAuthError for an unregistered URI."""
    uri = params.get("post_logout_redirect_uri")
    if uri is None:
        return "/logged-out"
    client_id = params.get("client_id") or (hint_aud[0] if len(hint_aud) == 1 else None)
    if client_id is None or (hint_aud and client_id not in hint_aud):
        raise OAuthError(
            "invalid_request", "post_logout_redirect_uri needs client_id or id_token_hint"
        )
    client = await browser.server.clients.get(client_id)
    if client is None or uri not in client.redirect_uris:
        raise OAuthError("invalid_request", "post_logout_redirect_uri is not registered")
    state = params.get("state")
    if state is None:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}{urlencode({'state': state})}"


async def logout(browser: Browser, request: Request) -> Response:
    params = await page_params(request)
    hint = params.get("id_token_hint")
    claims = (
        verify_id_token_hint(
            hint, browser.server.grants.keys.jwks(), issuer=browser.server.settings.issuer
        )
        if hint
        else None
    )
    if hint and claims is None:
        raise OAuthError("invalid_request", "id_token_hint is not an ID token from here")
    aud = claims.get("aud") if claims else None
    destination = await _destination(
        browser, params, [aud] if isinstance(aud, str) else list(aud or [])
    )
    session = await browser.current(request.cookies.get(browser.cookies.session))
    if session is None:
        return _leave(browser, destination)
    confirmed = request.method == "POST" and browser.session_csrf_ok(session, params.get("csrf"))
    if not confirmed and (claims is None or claims.get("sub") != session.subject):
        return page(
            "logout.html",
            view=view_of(browser, request),
            csrf=browser.csrf_for_session(session),
            fields={name: params.get(name) for name in FORWARDED if params.get(name)},
        )
    await Accounts(browser.server, actor=f"user:{session.subject}").revoke_session(
        session.subject, session.session_id
    )
    return _leave(browser, destination)


def _leave(browser: Browser, destination: str) -> Response:
    response = RedirectResponse(destination, status_code=303)
    browser.clear_cookie(response, browser.cookies.session)
    return response


def routes(browser: Browser) -> list[Route]:
    return [page_route("/logout", logout, browser, ["GET", "POST"])]
