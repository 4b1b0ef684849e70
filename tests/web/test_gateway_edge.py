"""``GatewayEdge`` against the middleware stack it stands in for: for any answer a gateway
gives (any header list, a refusal, a crash before or after the status line) and any
request (plain or TLS, headers within or over the limits), the client receives the same
messages, byte for byte, from both."""

from __future__ import annotations

import asyncio
from typing import Any, cast
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.audit import AuditPipeline
from bastion.errors import Hidden, StoreUnavailable
from bastion.gateway.pipeline import Gateway
from bastion.guards.resources import RequestLimits
from bastion.web import gateway_edge, middleware
from bastion.web.gateway_edge import GatewayEdge
from bastion.web.middleware import ErrorBoundary, SecurityHeaders

names = st.sampled_from(
    [
        b"content-type",
        b"Content-Type",
        b"cache-control",
        b"Content-Security-Policy",
        b"server",
        b"X-Powered-By",
        b"x-frame-options",
        b"referrer-policy",
        b"X-Content-Type-Options",
        b"ratelimit",
        b"link",
        b"x-request-id",
    ]
)
values = st.sampled_from([b"text/html; charset=utf-8", b"application/json", b"no-cache", b"x"])
answers = st.lists(st.tuples(names, values), max_size=8)
# What the gateway does: answer with these headers, or fail before or after answering.
behaviours = st.sampled_from(["answer", "problem", "store down", "crash", "crash after start"])


class FakeGateway:
    def __init__(self, behaviour: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.behaviour = behaviour
        self.headers = headers

    def handles(self, raw: bytes) -> bool:
        return raw.startswith(b"/api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.behaviour == "problem":
            raise Hidden("no route")
        if self.behaviour == "store down":
            raise StoreUnavailable("hot_state", "down")
        if self.behaviour == "crash":
            raise RuntimeError("internal detail")
        start = {"type": "http.response.start", "status": 200, "headers": list(self.headers)}
        await send(start)
        if self.behaviour == "crash after start":
            raise RuntimeError("internal detail")
        await send({"type": "http.response.body", "body": b"{}"})


def _scope(scheme: str, request_headers: int) -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "scheme": scheme,
        "path": "/api/hello",
        "raw_path": b"/api/hello",
        "headers": [(b"x-filler", b"v")] * request_headers,
        "client": ("192.0.2.1", 1234),
        "state": {},
    }


async def _sent(app: ASGIApp, scope: Scope) -> list[Message]:
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        messages.append(message)

    with (
        mock.patch.object(middleware, "new_correlation_id", return_value="cid-1"),
        mock.patch.object(gateway_edge, "new_correlation_id", return_value="cid-1"),
    ):
        await app(scope, receive, send)
    return messages


@settings(max_examples=200, deadline=None)
@given(
    headers=answers,
    behaviour=behaviours,
    scheme=st.sampled_from(["http", "https"]),
    proxied=st.booleans(),
    request_headers=st.integers(0, 6),
)
def test_edge_answers_as_the_stack_does(
    headers: list[tuple[bytes, bytes]],
    behaviour: str,
    scheme: str,
    proxied: bool,
    request_headers: int,
) -> None:
    gateway = FakeGateway(behaviour, headers)
    audit = AuditPipeline([])
    limits = RequestLimits(gateway, max_headers=4, max_header_bytes=10_000, audit=audit)
    security = SecurityHeaders(ErrorBoundary(limits), hsts_max_age=60, behind_tls_proxy=proxied)
    edge = GatewayEdge(cast(Gateway, gateway), _unreachable, security=security, limits=limits)
    stack = asyncio.run(_sent(security, _scope(scheme, request_headers)))
    edged = asyncio.run(_sent(edge, _scope(scheme, request_headers)))
    assert edged == stack
    assert any(name == b"x-request-id" for name, _ in edged[0]["headers"])


async def _unreachable(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("a gateway request reached the stack")


def test_other_requests_pass_through_the_stack() -> None:
    seen: list[Any] = []

    async def stack(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["path"])

    gateway = FakeGateway("answer", [])
    limits = RequestLimits(gateway, max_headers=4, max_header_bytes=100, audit=AuditPipeline([]))
    security = SecurityHeaders(stack, hsts_max_age=60, behind_tls_proxy=False)
    edge = GatewayEdge(cast(Gateway, gateway), stack, security=security, limits=limits)
    scope = {**_scope("http", 0), "path": "/token", "raw_path": b"/token"}
    asyncio.run(_sent(edge, scope))
    asyncio.run(_sent(edge, {"type": "websocket", "path": "/api/ws"}))
    assert seen == ["/token", "/api/ws"]
