"""The caller: an access token from Bastion or a declared issuer, under the Bearer
(RFC 6750) or DPoP (RFC 9449 §7) scheme, verified (and cached until its exp, revocation
still checked). Whether the scheme fits the token is the dpop step's. Public routes
skip it."""

from __future__ import annotations

from bastion.gateway.caller import presented_token
from bastion.gateway.exchange import Exchange
from bastion.gateway.routes import Route
from bastion.gateway.steps.base import Step


class Authentication(Step):
    name = "authentication"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return not route.settings.is_public

    async def request(self, ex: Exchange) -> None:
        scheme, token = presented_token(ex.headers.get("authorization"))
        ex.presented = (scheme, token)
        settings = ex.route.settings
        ex.caller = await self.services.authenticator.authenticate(token, settings.auth or ())
