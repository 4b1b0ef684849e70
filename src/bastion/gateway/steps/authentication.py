"""The caller: an access token from Bastion or a declared issuer, under the Bearer
(RFC 6750) or DPoP (RFC 9449 §7) scheme, verified (and cached until its exp, revocation
still checked). Whether the scheme fits the token is the dpop step's. Public routes
skip it.

Refusals are challenges in the scheme the app used: a token refused under the DPoP
scheme is answered ``DPoP error="invalid_token"`` (§7.1), and a request without usable
credentials is offered both schemes (§7.2)."""

from __future__ import annotations

from bastion.errors import DpopRefused, Unauthenticated
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
        dpop = self.services.dpop
        try:
            scheme, token = presented_token(ex.headers.get("authorization"))
        except Unauthenticated as exc:
            exc.headers["www-authenticate"] += f', DPoP algs="{dpop.algs}"'
            raise
        ex.presented = (scheme, token)
        settings = ex.route.settings
        try:
            ex.caller = await self.services.authenticator.authenticate(token, settings.auth or ())
        except Unauthenticated as exc:
            if scheme != "dpop":
                raise
            raise DpopRefused(exc.detail, "invalid_token", dpop.challenge("invalid_token")) from exc
