"""One spelling per id (``bastion.gateway.identifiers``): typed and object-id path
parameters brought to their canonical form before any comparison, registry look-up or
upstream path."""

from __future__ import annotations

from bastion.gateway.exchange import Exchange
from bastion.gateway.routes import Route
from bastion.gateway.steps.base import Step


class Identifiers(Step):
    name = "identifiers"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return bool(route.path_ids)

    async def request(self, ex: Exchange) -> None:
        route = ex.route
        ex.params = route.canonical_params(ex.params)
        ex.object_id = route.object_id(ex.params)
        ex.created_id = route.created_id(ex.params)
