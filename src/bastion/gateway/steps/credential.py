"""What the upstream receives instead of the app's token (``bastion.gateway.credentials``):
an internal token, or the upstream's own credential; plus the request id and the
forwarded address. Only declared headers pass from the app."""

from __future__ import annotations

from bastion.gateway.credentials import narrowed_scopes
from bastion.gateway.exchange import Exchange
from bastion.gateway.steps.base import Step
from bastion.web.context import correlation_id


class UpstreamCredential(Step):
    name = "upstream credential"

    async def request(self, ex: Exchange) -> None:
        route = ex.route
        outgoing = [(name, value) for name, value in ex.headers.items() if name in route.forwarded]
        client = ex.scope.get("client")
        outgoing += [
            ("x-request-id", correlation_id(ex.scope) or ""),
            ("x-forwarded-for", client[0] if client else ""),
            ("x-forwarded-proto", ex.scope.get("scheme", "http")),
        ]
        upstream = route.upstream
        if upstream.credential is not None:
            outgoing.append((upstream.credential.header, await upstream.credential.current()))
        elif upstream.settings.credential.type == "token_exchange" and ex.caller is not None:
            scopes = narrowed_scopes(route.internal_scopes, ex.caller)
            tokens = self.services.internal_tokens
            token = tokens.cached(ex.caller, upstream.settings, scopes)
            if token is None:
                token = await tokens.token_for(ex.caller, upstream.settings, scopes)
            outgoing.append(("authorization", f"Bearer {token}"))
        ex.outgoing = outgoing
