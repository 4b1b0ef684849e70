"""The caller: a bearer token from Bastion or a declared issuer (RFC 6750), verified
(and cached until its exp, revocation still checked). Public routes skip it."""

from __future__ import annotations

from bastion.gateway.caller import bearer_token
from bastion.gateway.exchange import Exchange
from bastion.gateway.routes import Route
from bastion.gateway.steps.base import Step


class Authentication(Step):
    name = "authentication"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return not route.settings.is_public

    async def request(self, ex: Exchange) -> None:
        token = bearer_token(ex.headers.get("authorization"))
        settings = ex.route.settings
        ex.caller = await self.services.authenticator.authenticate(token, settings.auth or ())
