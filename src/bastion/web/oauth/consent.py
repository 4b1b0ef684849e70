"""The consent page (/consent): the signed-in user approves what an app asked for.

Consent never stands in for a fresh or stronger sign-in the request demanded, and every
answer to a POST is a 303 (RFC 9700 §4.12).
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bastion.accounts.levels import needed, satisfies
from bastion.audit import Outcome
from bastion.authserver.browser import Browser
from bastion.errors import OAuthError
from bastion.web.oauth.answers import audit, page_route, redirect_error
from bastion.web.oauth.authorize import complete_authorization
from bastion.web.oauth.interactions import expired, page_request
from bastion.web.pages import page
from bastion.web.presentation import describe_scopes


async def consent(browser: Browser, request: Request) -> Response:
    found = await page_request(browser, request)
    values, interaction = found.values, found.interaction
    session = await browser.current(request.cookies.get(browser.cookies.session))
    if session is None or interaction.request is None or found.client is None:
        raise expired()
    interaction_id, nonce = interaction.interaction_id, found.nonce
    user = await browser.server.users.get(session.subject)
    required = needed(interaction.required_acr, user.auth_policy if user else None)
    fresh = interaction.login_after is None or session.auth_time >= interaction.login_after
    if not fresh or not satisfies(session.acr, required):
        # The request demanded a fresh sign-in (prompt=login, max_age) or a stronger one:
        # consent cannot stand in for it (OpenID Connect Core §3.1.2.1).
        return RedirectResponse(
            f"/login?{urlencode({'interaction': interaction_id})}", status_code=303
        )
    auth_request, client = interaction.request, found.client
    if request.method != "POST":
        return page(
            "consent.html",
            view=found.view,
            client_name=client.name or client.client_id,
            username=user.username if user else "",
            scopes=describe_scopes(
                auth_request.scope,
                found.view.language,
                browser.server.settings.oauth.scope_descriptions,
            ),
            interaction=interaction_id,
            csrf=browser.csrf_token(interaction_id, nonce),
            action="/consent",
        )
    if not browser.csrf_ok(interaction_id, nonce, values.get("csrf")):
        raise OAuthError("invalid_request", "the form expired; start again from the app")
    await browser.finish(interaction_id)
    if values.get("decision") != "allow":
        return redirect_error(
            browser,
            auth_request.redirect_uri,
            OAuthError("access_denied", "the user denied the request"),
            auth_request.state,
        )
    await browser.server.consents.grant(
        session.subject, client.client_id, frozenset(auth_request.scope), browser.clock.now()
    )
    audit(
        browser,
        "oauth.consent.granted",
        Outcome.SUCCESS,
        subject=session.subject,
        client_id=client.client_id,
        scope=list(auth_request.scope),
    )
    return await complete_authorization(browser, auth_request, session, None)


def routes(browser: Browser) -> list[Route]:
    return [page_route("/consent", consent, browser, ["GET", "POST"])]
