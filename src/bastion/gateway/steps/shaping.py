"""Response shaping (``bastion.gateway.shaping``, OWASP API3): only the allowlisted JSON
pointers of a successful answer reach the app."""

from __future__ import annotations

from bastion.gateway.exchange import Exchange
from bastion.gateway.routes import Route
from bastion.gateway.shaping import shape
from bastion.gateway.steps.base import Step


class Shaping(Step):
    name = "shaping"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return route.allow is not None

    async def answer(self, ex: Exchange) -> None:
        assert ex.route.allow is not None
        assert ex.answer is not None
        document = ex.answer.json()
        if document is not None:
            ex.answer.replace(shape(document, ex.route.allow))
