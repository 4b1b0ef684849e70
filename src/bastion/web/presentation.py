"""How apps and scopes are shown to people: scope descriptions in the page's language and
each app's brand (name, logo, links, accent colour)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from starlette.requests import Request

from bastion.authserver.browser import Browser
from bastion.errors import OAuthError
from bastion.oauth.authorize import AuthorizationRequest
from bastion.oauth.clients import Client
from bastion.texts import Text
from bastion.web.i18n import SOURCE_LOCALE, negotiate, translations
from bastion.web.pages import Brand, View
from bastion.web.static import accent_url

# The scopes OpenID Connect defines (OIDC Core §5.4, §11), described once for everyone.
STANDARD_SCOPES: Mapping[str, Text] = {
    "openid": Text("Confirm who you are"),
    "profile": Text("See your name and profile details"),
    "email": Text("See your email address"),
    "address": Text("See your postal address"),
    "phone": Text("See your phone number"),
    "offline_access": Text("Stay signed in when you are not using the app"),
}


@dataclass(frozen=True)
class ScopeView:
    name: str
    description: str


def describe_scopes(
    scopes: Iterable[str],
    language: str,
    configured: Mapping[str, str | Mapping[str, str]],
) -> list[ScopeView]:
    """Each scope in words: configured text in the page's language (then English, then
    any), else the standard description, else the scope's own name."""
    gettext = translations(language).gettext
    described = []
    for scope in scopes:
        text = _configured(configured.get(scope), language)
        if text is None and scope in STANDARD_SCOPES:
            text = STANDARD_SCOPES[scope].translated(gettext)
        described.append(ScopeView(scope, text or scope))
    return described


def _configured(value: str | Mapping[str, str] | None, language: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    primary = language.split("_")[0]
    for key in (language, primary, SOURCE_LOCALE):
        if key in value:
            return value[key]
    return next(iter(value.values()), None)


def brand_of(client: Client | None) -> Brand | None:
    if client is None:
        return None
    branding = client.branding
    return Brand(
        name=client.name or client.client_id,
        logo=branding.logo_uri,
        policy_uri=branding.policy_uri,
        tos_uri=branding.tos_uri,
        stylesheet=accent_url(branding.accent_color) if branding.accent_color else None,
        home=branding.client_uri,
        verified=client.source != "registration"
        or "client_name" in (client.statement_values or {}),
    )


def view_of(
    browser: Browser,
    request: Request,
    *,
    client: Client | None = None,
    authorization: AuthorizationRequest | None = None,
) -> View:
    """Who a page is for: the language from the authorization request's ``ui_locales``,
    then the browser, then the configured default; the app's brand when it is known."""
    language = negotiate(
        authorization.ui_locales if authorization else None,
        request.headers.get("accept-language"),
        browser.server.settings.pages.default_locale,
    )
    return View(language, browser.clock.now(), brand_of(client))


@dataclass(frozen=True)
class Explanation:
    heading: Text
    advice: Text


EXPIRED = Explanation(
    Text("This sign-in has expired"),
    Text(
        "A sign-in lasts a few minutes and works only in the browser that started it. "
        "Go back to the app and sign in again."
    ),
)
UNKNOWN_APP = Explanation(
    Text("This app cannot sign in here"),
    Text(
        "The app may be out of date or no longer allowed to sign in. Update the app, or "
        "contact the people who make it."
    ),
)
BAD_RETURN = Explanation(
    Text("The app asked to return to a place it is not allowed to"),
    Text(
        "For your safety, nothing was sent back to the app. Update the app, or contact the "
        "people who make it."
    ),
)
GENERIC = Explanation(
    Text("This sign-in request cannot be completed"),
    Text("Go back to the app and start signing in again."),
)


def explain(error: OAuthError) -> Explanation:
    """What happened and what to do next, for the error page of a sign-in."""
    if error.error in ("invalid_client", "unauthorized_client"):
        return UNKNOWN_APP
    if error.error == "invalid_request_uri":
        return EXPIRED
    description = error.description
    if "redirect_uri" in description or "does not match the pushed request" in description:
        return BAD_RETURN
    if "expired" in description or "from the start" in description:
        return EXPIRED
    return GENERIC
