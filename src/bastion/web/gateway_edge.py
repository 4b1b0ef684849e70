"""The way into the gateway: requests under its prefix get what the middleware stack
gives every other request, in one layer.

For any other request ``SecurityHeaders`` → ``ErrorBoundary`` → ``RequestLimits`` each
wrap the request and ``send`` in turn (``bastion.web.app.assemble``). The gateway is
the hot path, so for its requests ``GatewayEdge`` does the same work once: it assigns
the correlation id, refuses oversized headers (431), turns an escaping exception into a
problem answer, and finishes every answer's header list in a single pass
(``bastion.web.middleware.secured``) with the correlation id in the place
``ErrorBoundary`` puts it. Every answer, refusals and unmatched paths included, carries
exactly the fields the stack would have given it; the same middleware objects supply
the configuration, so the two cannot drift apart.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.gateway.pipeline import Gateway
from bastion.guards.resources import RequestLimits
from bastion.web.context import new_correlation_id
from bastion.web.middleware import SecurityHeaders, answer_failure, secured


class GatewayEdge:
    """Gateway requests to the gateway with the stack's guarantees; others to ``stack``."""

    def __init__(
        self,
        gateway: Gateway,
        stack: ASGIApp,
        *,
        security: SecurityHeaders,
        limits: RequestLimits,
    ) -> None:
        self.gateway = gateway
        self.stack = stack
        self.security = security
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.gateway.handles(scope.get("raw_path") or b""):
            await self.stack(scope, receive, send)
            return
        cid = new_correlation_id()
        scope.setdefault("state", {})["correlation_id"] = cid
        request_id = (b"x-request-id", cid.encode())
        hsts = self.security.hsts_for(scope)
        started = False

        async def send_secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = secured(message.get("headers", ()), hsts, request_id)
            await send(message)

        try:
            if self.limits.exceeded(scope):
                await self.limits.refuse(scope, send_secured)
                return
            await self.gateway(scope, receive, send_secured)
        except Exception as exc:
            await answer_failure(send_secured, exc, cid, started=started)
