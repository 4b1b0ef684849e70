"""How Bastion answers a browser: its own error page, or a redirect back to the client.

Errors about the client or redirect URI are shown on Bastion's own page and never
redirected (RFC 9700 §4.11.2); every other error goes back to the registered redirect
URI with ``state`` and ``iss`` (RFC 9207).

Page helpers raise ``OAuthError`` rather than return an error page; ``page_route`` is the
boundary that shows it, so every page answers a refusal the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bastion.audit import AuditEvent, Outcome
from bastion.authserver.browser import Browser
from bastion.errors import OAuthError
from bastion.web.pages import View, page
from bastion.web.presentation import explain, view_of

PageHandler = Callable[[Browser, Request], Awaitable[Response]]


def audit(browser: Browser, action: str, outcome: Outcome, **details: object) -> None:
    browser.server.audit.emit(AuditEvent(action, outcome, actor="browser", details=details))


def error_page(browser: Browser, exc: OAuthError, view: View) -> Response:
    audit(
        browser, "oauth.authorize.refused", Outcome.DENIED, error=exc.error, reason=exc.description
    )
    explained = explain(exc)
    return page(
        "error.html",
        400,
        view=view,
        error=exc.error,
        description=exc.description,
        heading=explained.heading,
        advice=explained.advice,
    )


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
    audit(
        browser, "oauth.authorize.refused", Outcome.DENIED, error=exc.error, reason=exc.description
    )
    return redirect_to_client(
        browser, redirect_uri, error=exc.error, error_description=exc.description, state=state
    )


def page_route(path: str, handler: PageHandler, browser: Browser, methods: list[str]) -> Route:
    """A page's route: the handler receives the browser services, and an ``OAuthError``
    it raises is shown on the error page."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(browser, request)
        except OAuthError as exc:
            return error_page(browser, exc, view_of(browser, request))

    return Route(path, endpoint, methods=methods)
