"""HTML pages: Jinja2 with autoescaping (request data cannot become markup), rendered in
the language chosen for the request (``bastion.web.i18n``) with the app's branding.

A handler describes who sees the page with a ``View`` (language, time, brand) and calls
``page``; the templates get ``_``/``ngettext`` for their text, ``dates`` for readable
times, and the stylesheet's URL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse

from bastion.accounts.user_agents import label
from bastion.oauth.clients import https_origin
from bastion.texts import Text
from bastion.web.i18n import SOURCE_LOCALE, Dates, translations
from bastion.web.middleware import page_policy
from bastion.web.static import stylesheet_url


@dataclass(frozen=True)
class Brand:
    """How an app presents itself on sign-in and consent (RFC 7591 §2 metadata)."""

    name: str
    logo: str | None = None
    policy_uri: str | None = None
    tos_uri: str | None = None
    stylesheet: str | None = None
    # The app's home page (RFC 7591 client_uri): the way back offered on error pages.
    home: str | None = None
    # False for a self-registered app whose name no operator signed (RFC 7591 §5).
    verified: bool = True


@dataclass(frozen=True)
class View:
    """Who a page is for: its language, the time it is rendered, the app's brand."""

    language: str = SOURCE_LOCALE
    now: float = field(default_factory=time.time)
    brand: Brand | None = None


@cache
def _environment(language: str) -> Environment:
    env = Environment(
        loader=PackageLoader("bastion.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
    )
    # An app's name inside Bastion's sentences is isolated (HTML's <bdi>), so its
    # direction cannot spill into the words around it.
    env.filters["bdi"] = lambda value: Markup("<bdi>%s</bdi>") % value
    # New-style gettext: placeholders are filled and escaped by Jinja, not by the caller.
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


@cache
def session_label(language: str) -> Any:
    gettext = translations(language).gettext

    def describe(user_agent: str | None) -> str:
        browser, system = label(user_agent)
        if browser and system:
            return gettext("%(browser)s on %(system)s") % {"browser": browser, "system": system}
        if browser or system:
            return str(browser or system)
        return gettext("Unknown browser")

    return describe


@cache
def translator(language: str) -> Any:
    """``t(message)`` for templates: a ``Text`` or plain message from the code, in the
    page's language (a message without a catalogue entry stays as it is)."""
    gettext = translations(language).gettext

    def translate(message: str) -> str:
        if isinstance(message, Text):
            return message.translated(gettext)
        return gettext(message) if message else ""

    return translate


def render(template: str, view: View, **context: Any) -> str:
    env = _environment(view.language)
    return env.get_template(template).render(
        lang=view.language.replace("_", "-"),
        dates=Dates(view.language, view.now),
        stylesheet=stylesheet_url(),
        brand=view.brand,
        session_label=session_label(view.language),
        t=translator(view.language),
        **context,
    )


def page(template: str, status: int = 200, *, view: View, **context: Any) -> HTMLResponse:
    """A page in ``view``'s language and brand; an https logo's origin is added to the
    page's CSP for images, on this page only."""
    html = render(template, view, **context)
    headers = {"cache-control": "no-store"}
    logo_origin = https_origin(view.brand.logo) if view.brand and view.brand.logo else None
    if logo_origin is not None:
        headers["content-security-policy"] = page_policy(image_origins=(logo_origin,))
    return HTMLResponse(html, status_code=status, headers=headers)
