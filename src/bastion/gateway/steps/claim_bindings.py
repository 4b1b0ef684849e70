"""Parameters and body fields bound to the caller's claims (``bastion.gateway.bindings``,
OWASP API1): path and query parameters before anything else is read, body fields once
the body has been validated."""

from __future__ import annotations

from bastion.gateway.exchange import Exchange
from bastion.gateway.routes import Route
from bastion.gateway.steps.base import Step


class ClaimBindings(Step):
    name = "claim bindings"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return route.bindings is not None and bool(route.bindings.path or route.bindings.query)

    async def request(self, ex: Exchange) -> None:
        assert ex.route.bindings is not None
        assert ex.caller is not None
        ex.route.bindings.check_params(ex.caller, ex.params, ex.query)
