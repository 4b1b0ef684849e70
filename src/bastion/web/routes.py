"""Bastion's own endpoints, each area given the services it uses.

This is where the runtime meets the routers: every area's ``routes`` function takes the
typed services its handlers need, so a handler receives them as arguments and nothing
looks the runtime up per request.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from bastion.authserver.browser import Browser
from bastion.runtime import Runtime
from bastion.web import device, health, jwks, static
from bastion.web.accounts import account, admin, login, logout, passkeys, recovery
from bastion.web.oauth import (
    authorize,
    consent,
    discovery,
    lifecycle,
    registration,
    token,
    userinfo,
)


def routes(runtime: Runtime) -> list[BaseRoute]:
    settings, auth = runtime.settings, runtime.auth
    browser = Browser(auth)
    # Starlette tries routes in order, one pattern match each: the endpoints apps call
    # on every grant and check (token, introspection, revocation) come first, ahead of
    # the pages' many routes. No two groups share a path, so the order changes no answer.
    return [
        *token.routes(auth, runtime.device),
        *lifecycle.routes(auth),
        *userinfo.routes(auth),
        *health.routes(runtime.check_stores),
        *jwks.routes(runtime.keys, max_age=settings.keys.jwks_max_age),
        *discovery.routes(settings),
        *registration.routes(auth),
        *(device.routes(runtime.device, auth) if runtime.device is not None else ()),
        *authorize.routes(browser),
        *consent.routes(browser),
        *login.routes(browser),
        *passkeys.routes(browser),
        *account.routes(browser),
        *logout.routes(browser),
        *recovery.routes(browser),
        *admin.routes(auth),
        *static.routes,
    ]
