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
from bastion.texts import Text
from bastion.web.oauth.answers import page_route
from bastion.web.oauth.common import page_params
from bastion.web.pages import page
from bastion.web.presentation import view_of

INVALID = Text("This recovery link is invalid, used or expired; ask the operator for a new one.")


async def recover(browser: Browser, request: Request) -> Response:
    values = await page_params(request)
    view = view_of(browser, request)
    ticket = values.get("ticket") or ""
    server = browser.server
    found = await server.factors.ticket(ticket_hash(ticket), server.clock.now()) if ticket else None
    user = await server.users.get(found.user_id) if found else None
    if found is None or user is None:
        return page("recover.html", 400, view=view, message=INVALID, ticket="", username="")

    def ask(message: str = "", status: int = 200) -> Response:
        return page(
            "recover.html",
            status,
            view=view,
            ticket=ticket,
            username=user.username,
            message=message,
        )

    if request.method != "POST":
        return ask()
    password = values.get("password") or ""
    if password != (values.get("password_again") or ""):
        return ask(Text("The two passwords differ."), 400)
    try:
        redeemed = await Accounts(server, actor="recovery-link").redeem(ticket, password)
    except WeakPassword as exc:
        # The Text the policy raised, so the page can show it in the reader's language.
        return ask(exc.args[0], 400)
    if redeemed is None:
        return page("recover.html", 400, view=view, message=INVALID, ticket="", username="")
    response = RedirectResponse("/account", status_code=303)
    browser.clear_cookie(response, browser.cookies.session)
    return response


def routes(browser: Browser) -> list[Route]:
    return [page_route("/recover", recover, browser, ["GET", "POST"])]
