"""Rate limits on a route (``bastion.guards.limiter``): by address, route or globally
before the token is checked, so floods cost no signature check; by user, app or tier
after it."""

from __future__ import annotations

from bastion.gateway.caller import principal
from bastion.gateway.exchange import Exchange
from bastion.gateway.routes import Route
from bastion.gateway.steps.base import Step
from bastion.guards.limiter import Facts


class AddressLimits(Step):
    name = "address limits"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return bool(route.limits_before)

    async def request(self, ex: Exchange) -> None:
        limiter = self.services.guards.limiter
        verdict = await limiter.check(ex.route.limit_scope, ex.route.limits_before, facts(ex))
        ex.extra += verdict.fields


class UserLimits(Step):
    name = "user limits"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return bool(route.limits_after)

    async def request(self, ex: Exchange) -> None:
        limiter = self.services.guards.limiter
        verdict = await limiter.check(ex.route.limit_scope, ex.route.limits_after, facts(ex))
        ex.extra += verdict.fields


def facts(ex: Exchange) -> Facts:
    """What this request's limits can be keyed by."""
    caller = ex.caller
    client = ex.scope.get("client")
    if caller is None:
        return Facts(ip=client[0] if client else None, route=ex.route.label)
    return Facts(
        ip=client[0] if client else None,
        user=principal(caller, caller.subject),
        client=caller.client_id,
        route=ex.route.label,
        claims=caller.claims,
    )
