"""Function-level authorization: scopes, apps, roles, claims, sign-in level and age
(``bastion.gateway.policy``; 403, or 401 with the RFC 9470 challenge)."""

from __future__ import annotations

from bastion.gateway.exchange import Exchange
from bastion.gateway.policy import authorize
from bastion.gateway.routes import Route
from bastion.gateway.steps.base import Step


class Authorization(Step):
    name = "authorization"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return not route.settings.is_public

    async def request(self, ex: Exchange) -> None:
        assert ex.caller is not None
        authorize(ex.route.settings, ex.caller, self.services.clock.now())
