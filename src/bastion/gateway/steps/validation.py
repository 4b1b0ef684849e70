"""Input validation (``bastion.gateway.validation``, OWASP API3 and API4): path and query
schemas; the body read within its size and time limits, of a declared JSON media type,
within depth and array limits, valid against its schema, and forwarded as the JSON that
was checked."""

from __future__ import annotations

from bastion.gateway.exchange import Exchange, read_body
from bastion.gateway.routes import BODY_METHODS, Route
from bastion.gateway.steps.base import Step


class InputValidation(Step):
    name = "input validation"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return route.input is not None or bool(set(route.settings.methods) & BODY_METHODS)

    async def request(self, ex: Exchange) -> None:
        rules = ex.route.input
        if rules is not None:
            rules.check_params(ex.params, ex.query)
        if ex.method not in BODY_METHODS:
            return
        headers = ex.headers
        if ex.body is None:  # the device assertion step may have read it already
            ex.body = await read_body(
                ex.receive,
                ex.route.max_body,
                headers.get("content-length"),
                self.services.body_timeout,
            )
        if rules is None:
            return
        ex.document = rules.check_body(headers.get("content-type"), ex.body)
        if ex.document is not None:
            # Sent as JSON in UTF-8, whatever charset or parameters the app named.
            media = (headers.get("content-type") or "").split(";")[0]
            headers["content-type"] = media.strip().lower()
