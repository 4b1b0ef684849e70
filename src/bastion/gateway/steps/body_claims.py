"""Body fields bound to claims (refused when they differ, or set by the gateway), and the
id a create records when the app sends it in the body (``objects.id_from = "body:..."``):
both read the validated body, before anything is forwarded."""

from __future__ import annotations

from bastion.errors import InvalidInput
from bastion.gateway.bindings import canonicalise_at
from bastion.gateway.exchange import Exchange
from bastion.gateway.routes import Route
from bastion.gateway.steps.base import Step


class BodyClaims(Step):
    name = "body claims and ids"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return route.needs_document and not route.settings.is_public

    async def request(self, ex: Exchange) -> None:
        if ex.document is None or ex.caller is None:
            return  # no body on this request: the schema said it takes none
        route = ex.route
        if route.bindings is not None and route.bindings.body:
            route.bindings.bind_body(ex.caller, ex.document)
        objects = route.settings.objects
        source, where = objects.id_source
        if objects.records is not None and source == "body":
            created = canonicalise_at(ex.document, where, route.created_form)
            if created is None:
                raise InvalidInput(f"The body needs the new object's id at {where}.")
            ex.created_id = created
