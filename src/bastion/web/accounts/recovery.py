"""Account recovery with an operator-issued one-time link (``bastion users recovery-link``).

The link carries 256 random bits; only their hash is stored. The page asks for a new
password (same policy as everywhere); redeeming revokes every session and token the
account held, and removes second factors only when the operator issued the link with
``--reset-mfa``. Every step is audited.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bastion.authserver.accounts import Accounts, ticket_hash
from bastion.authserver.browser import Browser
from bastion.errors import WeakPassword
from bastion.web.oauth.answers import page_route
from bastion.web.oauth.common import page_params
from bastion.web.pages import page

INVALID = "This recovery link is invalid, used or expired; ask the operator for a new one."


async def recover(browser: Browser, request: Request) -> Response:
    values = await page_params(request)
    ticket = values.get("ticket") or ""
    server = browser.server
    found = await server.factors.ticket(ticket_hash(ticket), server.clock.now()) if ticket else None
    user = await server.users.get(found.user_id) if found else None
    if found is None or user is None:
        return page("recover.html", 400, message=INVALID, ticket="", username="")
    if request.method != "POST":
        return page("recover.html", ticket=ticket, username=user.username, message="")
    password = values.get("password") or ""
    if password != (values.get("password_again") or ""):
        message = "The two passwords differ."
        return page("recover.html", 400, ticket=ticket, username=user.username, message=message)
    try:
        redeemed = await Accounts(server, actor="recovery-link").redeem(ticket, password)
    except WeakPassword as exc:
        return page("recover.html", 400, ticket=ticket, username=user.username, message=str(exc))
    if redeemed is None:
        return page("recover.html", 400, message=INVALID, ticket="", username="")
    response = RedirectResponse("/account", status_code=303)
    browser.clear_cookie(response, browser.cookies.session)
    return response


def routes(browser: Browser) -> list[Route]:
    return [page_route("/recover", recover, browser, ["GET", "POST"])]
