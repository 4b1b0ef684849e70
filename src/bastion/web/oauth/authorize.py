"""The authorization endpoint (/authorize), pushed requests (/par), and the way from a
signed-in session to the code sent back to the app.

Errors about the client or redirect URI are shown on Bastion's own page and never
redirected (RFC 9700 §4.11.2); every other error goes back to the registered redirect
URI with ``state`` and ``iss`` (RFC 9207), see ``answers``. Every answer to a POST is a
303 (RFC 9700 §4.12: a 307 would re-post the user's credentials to the client).
"""

from __future__ import annotations

import secrets
from functools import partial
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
from bastion.audit import Outcome
from bastion.authserver.browser import Browser
from bastion.authserver.server import AuthServer
from bastion.errors import DpopError, OAuthError, UnsafeRedirect
from bastion.oauth.authorize import PAR_URN_PREFIX, AuthorizationRequest, identify, validate
from bastion.oauth.clients import Client
from bastion.oauth.codes import CodeGrant, code_hash, new_code
from bastion.oauth.params import Params, parse
from bastion.web.oauth.answers import audit, page_route, redirect_error, redirect_to_client
from bastion.web.oauth.common import authenticate, form, oauth_error, oauth_json

CLIENT_AUTH_PARAMS = frozenset({"client_assertion", "client_assertion_type", "client_secret"})


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


async def authorize(browser: Browser, request: Request) -> Response:
    # An OAuthError up to here concerns the client or its redirect URI: the page boundary
    # shows it on Bastion's own page.
    params, pushed = await _pushed(browser, parse(request.query_params.multi_items()))
    client, redirect_uri = identify(params, (await _client_lookup(browser, params)).get)
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
    return await complete_authorization(browser, auth_request, session, interaction_id)


def _identity_assured(client: Client, redirect_uri: str) -> bool:
    """RFC 8252 §8.6: remembered consent is applied silently only when the redirect proves
    which app receives the code. Any app may claim a private-use scheme or listen on
    loopback, so those requests always show the consent page."""
    return not client.is_public or redirect_uri.startswith("https://")


async def complete_authorization(
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
            expires_at=now + browser.server.settings.oauth.code_lifetime,
            redirect_uri_given=auth_request.redirect_uri_given,
            dpop_jkt=auth_request.dpop_jkt,
        )
    )
    if interaction_id:
        await browser.finish(interaction_id)
    audit(
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


async def pushed_authorization_request(browser: Browser, request: Request) -> Response:
    """RFC 9126 §2: the client posts its request and gets a one-time ``request_uri``."""
    server = browser.server
    try:
        params = await form(request)
        client = await authenticate(server, request, params)
        if "request_uri" in params:
            raise OAuthError("invalid_request", "request_uri cannot be pushed")
        identified, redirect_uri = identify(params, {client.client_id: client}.get)
        pushed = validate(params, identified, redirect_uri, pushed=True)
        dpop_jkt = await _pushed_key(server, request, client, pushed.dpop_jkt)
    except DpopError as exc:
        # RFC 9449 §8: a nonce-less proof is answered with the nonce to use.
        headers = (
            {"dpop-nonce": server.dpop.current_nonce()} if exc.error == "use_dpop_nonce" else {}
        )
        return oauth_json({"error": exc.error, "error_description": exc.description}, 400, headers)
    except OAuthError as exc:
        return oauth_error(exc)
    handle = secrets.token_urlsafe(24)
    # Client credentials authenticated this push; they are not part of the request.
    names = params.names() - CLIENT_AUTH_PARAMS - {"dpop_jkt"}
    pairs = [(name, params.get(name)) for name in sorted(names)]
    pairs += [("resource", resource) for resource in params.resources]
    if dpop_jkt is not None:
        pairs.append(("dpop_jkt", dpop_jkt))
    lifetime = server.settings.oauth.par_lifetime
    await server.hot.set(
        f"par:{handle}", orjson.dumps({"client_id": client.client_id, "pairs": pairs}), ttl=lifetime
    )
    audit(browser, "oauth.par.accepted", Outcome.SUCCESS, client_id=client.client_id)
    return oauth_json(
        {"request_uri": PAR_URN_PREFIX + handle, "expires_in": int(lifetime)}, status=201
    )


async def _pushed_key(
    server: AuthServer, request: Request, client: Client, named: str | None
) -> str | None:
    """RFC 9449 §10.1: a DPoP proof sent with the push binds the code to its key, as
    ``dpop_jkt`` does; when both are sent they must name the same key."""
    values = request.headers.getlist("dpop")
    if not values:
        return named
    proof = await server.dpop.check(
        values,
        method="POST",
        uri=f"{server.settings.issuer}/par",
        actor=f"client:{client.client_id}",
        nonce=server.dpop.nonce_required(client),
    )
    if named is not None and named != proof.jkt:
        server.dpop.refused(
            f"client:{client.client_id}", "wrong_key", f"{server.settings.issuer}/par"
        )
        raise DpopError("wrong_key", "dpop_jkt does not name the DPoP proof's key")
    return proof.jkt


def routes(browser: Browser) -> list[Route]:
    return [
        page_route("/authorize", authorize, browser, ["GET"]),
        Route("/par", partial(pushed_authorization_request, browser), methods=["POST"]),
    ]
