"""Rate limits on a route (``bastion.guards.limiter``): by address, route or globally
before the token is checked, so floods cost no signature check; by user, app or tier
after it."""

from __future__ import annotations

from bastion.gateway.caller import principal
from bastion.gateway.exchange import Exchange
from bastion.gateway.routes import Route
from bastion.gateway.steps.base import Step
from bastion.guards.limiter import Facts
from bastion.guards.settings import LimitSettings


class AddressLimits(Step):
    name = "address limits"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return bool(route.limits_before)

    async def request(self, ex: Exchange) -> None:
        await limit(self, ex, ex.route.limits_before)


class UserLimits(Step):
    name = "user limits"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return bool(route.limits_after)

    async def request(self, ex: Exchange) -> None:
        await limit(self, ex, ex.route.limits_after)


async def limit(step: Step, ex: Exchange, limits: tuple[LimitSettings, ...]) -> None:
    caller = ex.caller
    client = ex.scope.get("client")
    facts = Facts(
        ip=client[0] if client else None,
        user=None if caller is None else principal(caller, caller.subject),
        client=None if caller is None else caller.client_id,
        route=ex.route.label,
        claims=None if caller is None else caller.claims,
    )
    limiter = step.services.guards.limiter
    verdict = await limiter.check(f"route:{ex.route.label}", limits, facts)
    ex.extra += verdict.fields
