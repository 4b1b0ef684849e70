"""Rate limits on Bastion's own endpoints: sign-in, token, authorization, registration,
device attestation.

Plain ASGI in front of the endpoints. Which request belongs to which group is fixed
here; the limits themselves are ``[guards.endpoints]`` (defaults ship for every group,
per client address). Over a limit: 429 problem+json with ``Retry-After`` and, for
visible limits, the RateLimit fields (draft-ietf-httpapi-ratelimit-headers-10).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.errors import RateLimited
from bastion.guards.limiter import Facts
from bastion.guards.service import Guards
from bastion.web.context import correlation_id
from bastion.web.middleware import send_problem

GROUPS: dict[tuple[str, str], str] = {
    ("POST", "/login"): "login",
    ("POST", "/login/verify"): "login",
    ("POST", "/login/passkey/options"): "login",
    ("POST", "/login/passkey"): "login",
    ("POST", "/recover"): "login",
    ("POST", "/token"): "token",
    ("POST", "/revoke"): "token",
    ("POST", "/introspect"): "token",
    ("POST", "/par"): "token",
    ("GET", "/authorize"): "authorize",
    ("POST", "/consent"): "authorize",
    ("POST", "/register"): "registration",
    ("POST", "/device/challenge"): "device",
    ("POST", "/device/attest/apple"): "device",
    ("POST", "/device/attest/google"): "device",
    ("PUT", "/device/encryption-key"): "device",
}


def group_of(method: str, path: str) -> str | None:
    # Managing a registered client (RFC 7592, /register/{client_id}) needs that client's
    # registration access token; only creating clients is open to floods.
    return GROUPS.get((method, path))


class EndpointLimits:
    def __init__(self, app: ASGIApp, guards: Guards) -> None:
        self.app = app
        self.guards = guards

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        group = group_of(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if group is None:
            await self.app(scope, receive, send)
            return
        limits = getattr(self.guards.settings.guards.endpoints, group)
        client = scope.get("client")
        facts = Facts(ip=client[0] if client else None, route=group)
        try:
            verdict = await self.guards.limiter.check(f"endpoint:{group}", limits, facts)
        except RateLimited as exc:
            await send_problem(send, exc, correlation_id(scope))
            return
        extra = verdict.fields
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_fields)
