"""A request to a sign-in or consent page, tied to the interaction this browser started.

An interaction is found only with the browser's interaction cookie (its nonce), and only
while its client, if any, is still enabled; otherwise the page says the sign-in expired.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from bastion.authserver.browser import Browser, Interaction
from bastion.errors import OAuthError
from bastion.oauth.clients import Client
from bastion.oauth.params import Params
from bastion.web.oauth.common import page_params
from bastion.web.pages import View
from bastion.web.presentation import view_of


def expired() -> OAuthError:
    return OAuthError(
        "invalid_request",
        "this sign-in request has expired or belongs to another browser; start again from the app",
    )


@dataclass(frozen=True)
class PageRequest:
    """A request to a sign-in or consent page, tied to its interaction and browser."""

    browser: Browser
    values: Params
    interaction: Interaction
    nonce: str
    client: Client | None
    # The page's language and the app's brand (bastion.web.presentation).
    view: View

    @property
    def interaction_id(self) -> str:
        return self.interaction.interaction_id


async def page_request(browser: Browser, request: Request) -> PageRequest:
    """The page's parameters and interaction; ``OAuthError`` when either is missing."""
    values = await page_params(request)
    found = await find_interaction(request, browser, values, values.get("interaction"))
    if found is None:
        raise expired()
    return found


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
    view = view_of(browser, request, client=client, authorization=interaction.request)
    return PageRequest(browser, values, interaction, nonce, client, view)
