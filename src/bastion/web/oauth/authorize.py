"""The authorization endpoint and its pages: /authorize, /par, /login, /consent.

Errors about the client or redirect URI are shown on Bastion's own page and never
redirected (RFC 9700 §4.11.2); every other error goes back to the registered redirect
URI with ``state`` and ``iss`` (RFC 9207). Every answer to a POST is a 303 (RFC 9700
§4.12: a 307 would re-post the user's credentials to the client).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bastion.accounts.levels import (
    ACR_PASSWORD,
    Policy,
    needed,
    requested,
    satisfies,
    strongest,
)
from bastion.accounts.records import BrowserSession
from bastion.audit import AuditEvent, Outcome
from bastion.authserver.browser import Browser, Interaction
from bastion.errors import OAuthError, UnsafeRedirect
from bastion.oauth.authorize import PAR_URN_PREFIX, AuthorizationRequest, identify, validate
from bastion.oauth.clients import Client
from bastion.oauth.codes import CODE_LIFETIME, CodeGrant, code_hash, new_code
from bastion.oauth.params import Params, parse
from bastion.web.oauth.common import (
    auth_server,
    authenticate,
    form,
    oauth_error,
    oauth_json,
    page_params,
)
from bastion.web.pages import page

CLIENT_AUTH_PARAMS = frozenset({"client_assertion", "client_assertion_type", "client_secret"})


def _audit(browser: Browser, action: str, outcome: Outcome, **details: object) -> None:
    browser.server.grants.audit.emit(AuditEvent(action, outcome, actor="browser", details=details))


def error_page(browser: Browser, exc: OAuthError) -> Response:
    _audit(
        browser, "oauth.authorize.refused", Outcome.DENIED, error=exc.error, reason=exc.description
    )
    return page("error.html", 400, error=exc.error, description=exc.description)


def redirect_to_client(browser: Browser, redirect_uri: str, **values: str | None) -> Response:
    query = urlencode(
        {k: v for k, v in values.items() if v is not None} | {"iss": browser.server.settings.issuer}
    )
    separator = "&" if "?" in redirect_uri else "?"
    response = RedirectResponse(f"{redirect_uri}{separator}{query}", status_code=303)
    browser.clear_cookie(response, browser.cookies.interaction)
    return response


def redirect_error(
    browser: Browser, redirect_uri: str, exc: OAuthError, state: str | None
) -> Response:
    _audit(
        browser, "oauth.authorize.refused", Outcome.DENIED, error=exc.error, reason=exc.description
    )
    return redirect_to_client(
        browser, redirect_uri, error=exc.error, error_description=exc.description, state=state
    )


async def _client_lookup(browser: Browser, params: Params) -> dict[str, Client]:
    client_id = params.get("client_id")
    client = await browser.server.clients.get(client_id) if client_id else None
    return {client.client_id: client} if client else {}


async def _pushed(browser: Browser, query: Params) -> tuple[Params, bool]:
    """The request's parameters, taken from a pushed request when ``request_uri`` names one.

    RFC 9126 §4: the pushed parameters replace the query's; the request_uri is one-time.
    """
    request_uri = query.get("request_uri")
    if request_uri is None:
        return query, False
    if not request_uri.startswith(PAR_URN_PREFIX):
        raise UnsafeRedirect(
            "invalid_request_uri",
            "request_uri must come from the pushed authorization request endpoint",
        )
    key = f"par:{request_uri[len(PAR_URN_PREFIX) :]}"
    hot = browser.server.hot
    raw = await hot.get(key)
    record = orjson.loads(raw) if raw is not None else None
    if record is not None and record["client_id"] != query.get("client_id"):
        # Checked before consuming, so another client cannot burn the legitimate one's URI.
        raise UnsafeRedirect("invalid_request", "client_id does not match the pushed request")
    if raw is None or record is None or not await hot.compare_and_delete(key, raw):
        raise UnsafeRedirect("invalid_request_uri", "request_uri is unknown, expired or used")
    return parse([(name, value) for name, value in record["pairs"]]), True


async def authorize(request: Request) -> Response:
    browser = Browser(auth_server(request))
    try:
        params, pushed = await _pushed(browser, parse(request.query_params.multi_items()))
        client, redirect_uri = identify(params, (await _client_lookup(browser, params)).get)
    except OAuthError as exc:
        return error_page(browser, exc)
    try:
        auth_request = validate(params, client, redirect_uri, pushed=pushed)
    except OAuthError as exc:
        return redirect_error(browser, redirect_uri, exc, params.get("state"))
    session = await browser.current(request.cookies.get(browser.cookies.session))
    now = browser.clock.now()
    required = strongest(
        Policy(client.auth_policy).acr, requested(auth_request.acr_values) or ACR_PASSWORD
    )
    stale = (
        session is not None
        and auth_request.max_age is not None
        and (now - session.auth_time > auth_request.max_age)
    )
    if session is None or "login" in auth_request.prompt or stale:
        if "none" in auth_request.prompt:
            return redirect_error(
                browser,
                redirect_uri,
                OAuthError("login_required", "the user must sign in"),
                auth_request.state,
            )
        return await interact(
            browser, auth_request, "/login", needs_login=True, required_acr=required
        )
    user = await browser.server.users.get(session.subject)
    if not satisfies(session.acr, needed(required, user.auth_policy if user else None)):
        # Step-up (OpenID Connect Core §3.1.2.1 acr_values; RFC 9470 §4): the session's
        # user proves a stronger factor, and the session is raised rather than replaced.
        if "none" in auth_request.prompt:
            return redirect_error(
                browser,
                redirect_uri,
                OAuthError("interaction_required", "the user must authenticate further"),
                auth_request.state,
            )
        return await interact(
            browser, auth_request, "/login/verify", required_acr=required, step_up=session
        )
    return await after_login(browser, client, auth_request, session, interaction_id=None)


async def interact(
    browser: Browser,
    auth_request: AuthorizationRequest | None,
    path: str,
    existing: tuple[str, str] | None = None,
    *,
    needs_login: bool = False,
    required_acr: str = ACR_PASSWORD,
    return_to: str | None = None,
    step_up: BrowserSession | None = None,
) -> Response:
    """Send the browser to a sign-in or consent page for a (new or existing) interaction."""
    interaction_id, nonce = existing or await browser.start(
        auth_request,
        needs_login=needs_login,
        required_acr=required_acr,
        return_to=return_to,
        step_up=step_up,
    )
    response = RedirectResponse(
        f"{path}?{urlencode({'interaction': interaction_id})}", status_code=303
    )
    browser.set_cookie(
        response, browser.cookies.interaction, nonce, max_age=int(browser.settings.login_timeout)
    )
    return response


async def after_login(
    browser: Browser,
    client: Client,
    auth_request: AuthorizationRequest,
    session: BrowserSession,
    interaction_id: str | None,
    nonce: str | None = None,
) -> Response:
    consented = await browser.server.consents.granted(session.subject, client.client_id)
    remembered = set(auth_request.scope) <= consented and _identity_assured(
        client, auth_request.redirect_uri
    )
    if "consent" in auth_request.prompt or not remembered:
        if "none" in auth_request.prompt:
            return redirect_error(
                browser,
                auth_request.redirect_uri,
                OAuthError("consent_required", "the user must approve this app"),
                auth_request.state,
            )
        existing = (interaction_id, nonce) if interaction_id and nonce else None
        return await interact(browser, auth_request, "/consent", existing)
    return await _complete(browser, auth_request, session, interaction_id)


def _identity_assured(client: Client, redirect_uri: str) -> bool:
    """RFC 8252 §8.6: remembered consent is applied silently only when the redirect proves
    which app receives the code. Any app may claim a private-use scheme or listen on
    loopback, so those requests always show the consent page."""
    return not client.is_public or redirect_uri.startswith("https://")


async def _complete(
    browser: Browser,
    auth_request: AuthorizationRequest,
    session: BrowserSession,
    interaction_id: str | None,
) -> Response:
    code = new_code()
    now = browser.clock.now()
    await browser.server.grants.grants.save_code(
        CodeGrant(
            code_hash=code_hash(code),
            client_id=auth_request.client_id,
            redirect_uri=auth_request.redirect_uri,
            code_challenge=auth_request.code_challenge,
            scope=auth_request.scope,
            resources=auth_request.resources,
            subject=session.subject,
            session_id=session.session_id,
            auth_time=session.auth_time,
            acr=session.acr,
            amr=session.amr,
            nonce=auth_request.nonce,
            issued_at=now,
            expires_at=now + CODE_LIFETIME,
            redirect_uri_given=auth_request.redirect_uri_given,
        )
    )
    if interaction_id:
        await browser.finish(interaction_id)
    _audit(
        browser,
        "oauth.authorization.granted",
        Outcome.SUCCESS,
        client_id=auth_request.client_id,
        subject=session.subject,
        scope=list(auth_request.scope),
    )
    return redirect_to_client(
        browser, auth_request.redirect_uri, code=code, state=auth_request.state
    )


def expired(browser: Browser) -> Response:
    return error_page(
        browser,
        OAuthError(
            "invalid_request",
            "this sign-in request has "
            "expired or belongs to another browser; start again "
            "from the app",
        ),
    )


@dataclass(frozen=True)
class PageRequest:
    """A request to a sign-in or consent page, tied to its interaction and browser."""

    browser: Browser
    values: Params
    interaction: Interaction
    nonce: str
    client: Client | None

    @property
    def interaction_id(self) -> str:
        return self.interaction.interaction_id


async def page_request(request: Request) -> PageRequest | Response:
    browser = Browser(auth_server(request))
    try:
        values = await page_params(request)
    except OAuthError as exc:
        return error_page(browser, exc)
    found = await find_interaction(request, browser, values, values.get("interaction"))
    return found or expired(browser)


async def find_interaction(
    request: Request, browser: Browser, values: Params, interaction_id: str | None
) -> PageRequest | None:
    """The interaction this browser started (its cookie holds the nonce), whose client, if
    any, is still enabled."""
    nonce = request.cookies.get(browser.cookies.interaction)
    interaction = await browser.load(interaction_id or "", nonce)
    if interaction is None or nonce is None:
        return None
    client = None
    if interaction.request is not None:
        client = await browser.server.clients.get(interaction.request.client_id)
        if client is None or not client.enabled:
            return None
    return PageRequest(browser, values, interaction, nonce, client)


async def consent(request: Request) -> Response:
    found = await page_request(request)
    if isinstance(found, Response):
        return found
    browser, values = found.browser, found.values
    interaction = found.interaction
    session = await browser.current(request.cookies.get(browser.cookies.session))
    if session is None or interaction.request is None or found.client is None:
        return expired(browser)
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
    is_post = request.method == "POST"
    if not is_post:
        return page(
            "consent.html",
            client_name=client.name or client.client_id,
            scopes=auth_request.scope,
            interaction=interaction_id,
            csrf=browser.csrf_token(interaction_id, nonce),
            action="/consent",
        )
    if not browser.csrf_ok(interaction_id, nonce, values.get("csrf")):
        return error_page(
            browser, OAuthError("invalid_request", "the form expired; start again from the app")
        )
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
    _audit(
        browser,
        "oauth.consent.granted",
        Outcome.SUCCESS,
        subject=session.subject,
        client_id=client.client_id,
        scope=list(auth_request.scope),
    )
    return await _complete(browser, auth_request, session, None)


async def pushed_authorization_request(request: Request) -> Response:
    """RFC 9126 §2: the client posts its request and gets a one-time ``request_uri``."""
    server = auth_server(request)
    browser = Browser(server)
    try:
        params = await form(request)
        client = await authenticate(request, params)
        if "request_uri" in params:
            raise OAuthError("invalid_request", "request_uri cannot be pushed")
        identified, redirect_uri = identify(params, {client.client_id: client}.get)
        validate(params, identified, redirect_uri, pushed=True)
    except OAuthError as exc:
        return oauth_error(exc)
    handle = secrets.token_urlsafe(24)
    # Client credentials authenticated this push; they are not part of the request.
    pairs = [(name, params.get(name)) for name in sorted(params.names() - CLIENT_AUTH_PARAMS)]
    pairs += [("resource", resource) for resource in params.resources]
    lifetime = server.settings.oauth.par_lifetime
    await server.hot.set(
        f"par:{handle}", orjson.dumps({"client_id": client.client_id, "pairs": pairs}), ttl=lifetime
    )
    _audit(browser, "oauth.par.accepted", Outcome.SUCCESS, client_id=client.client_id)
    return oauth_json(
        {"request_uri": PAR_URN_PREFIX + handle, "expires_in": int(lifetime)}, status=201
    )


routes = [
    Route("/authorize", authorize, methods=["GET"]),
    Route("/par", pushed_authorization_request, methods=["POST"]),
    Route("/consent", consent, methods=["GET", "POST"]),
]
