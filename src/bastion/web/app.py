"""The ASGI application: routes from each area inside the middleware every response passes."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.config import Settings
from bastion.guards.endpoints import EndpointLimits
from bastion.guards.resources import RequestLimits, refusal_auditor
from bastion.web import health, jwks, static
from bastion.web.accounts import account, admin, login, logout, passkeys, recovery
from bastion.web.context import correlation_id
from bastion.web.middleware import BodyLimit, ErrorBoundary, SecurityHeaders, problem_for
from bastion.web.oauth import (
    authorize,
    discovery,
    lifecycle,
    registration,
    token,
    userinfo,
)
from bastion.web.problems import problem_response
from bastion.web.server_protocol import lifespan_state

RuntimeOpener = Callable[[], AbstractAsyncContextManager[Any]]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    # Starlette's own 404/405 details are fixed phrases; ours never carry input back.
    return problem_response(
        exc.status_code, correlation_id=correlation_id(request.scope), headers=headers
    )


async def _unhandled(request: Request, exc: Exception) -> Response:
    status, body, headers = problem_for(exc, correlation_id(request.scope))
    return Response(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


class GatewayDispatch:
    """Requests under the gateway's prefix go to the gateway pipeline, not to Starlette.

    The gateway is plain ASGI on the hot path; it is built with the runtime, so it is
    looked up in the app state that the lifespan fills.
    """

    def __init__(self, starlette: Starlette, app: ASGIApp) -> None:
        self.state = starlette.state
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            gateway = getattr(getattr(self.state, "runtime", None), "gateway", None)
            if gateway is not None and gateway.handles(scope.get("raw_path") or b""):
                await gateway(scope, receive, send)
                return
        await self.app(scope, receive, send)


def settle_garbage_collector() -> None:
    """Once start-up has built its long-lived objects: move them out of the collector's
    sight and collect the young generation less often.

    Measured on the gateway (docs/performance.md): the default threshold of 700
    allocations ran full young-generation passes over thousands of start-up objects many
    times a second, for ~15% of throughput and a p99 of 60-90 ms under load.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


@contextmanager
def on_hangup(callback: Callable[[], None]) -> Iterator[None]:
    """Run ``callback`` on ``SIGHUP`` while the block runs (the Unix "re-read your files").

    Under ``--workers`` the supervising process receives it and restarts its workers,
    which read everything again at start.
    """
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, callback)
    except (NotImplementedError, RuntimeError, ValueError):
        # No signals here (not the main thread, or not Unix): files are still re-read
        # when they change.
        logging.getLogger("bastion").debug("SIGHUP handler not installed")
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


def build_app(
    settings: Settings,
    open_runtime: RuntimeOpener,
    extra_routes: Sequence[BaseRoute] = (),
    *,
    served: bool = False,
) -> ASGIApp:
    """Assemble the app; ``open_runtime`` yields the stores and services for its lifetime."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        async with open_runtime() as runtime:
            app.state.runtime = runtime
            # The server's connection protocol reads its limits from the lifespan state.
            state = lifespan_state(settings.server, runtime.audit)
            if not served:
                yield state
                return
            settle_garbage_collector()
            with on_hangup(runtime.reload):
                async with runtime.housekeeping():
                    yield state

    inner = Starlette(
        routes=[
            *health.routes,
            *jwks.routes,
            *discovery.routes,
            *authorize.routes,
            *login.routes,
            *passkeys.routes,
            *account.routes,
            *logout.routes,
            *recovery.routes,
            *admin.routes,
            *static.routes,
            *token.routes,
            *lifecycle.routes,
            *userinfo.routes,
            *registration.routes,
            *extra_routes,
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _unhandled},
    )

    def runtime() -> Any:
        return getattr(inner.state, "runtime", None)

    server = settings.server
    # The gateway comes before the global body limit: it enforces its own per-route limits
    # (never above the server's) and audits those refusals like every other.
    audit = refusal_auditor(lambda: getattr(runtime(), "audit", None))
    limited: ASGIApp = BodyLimit(
        EndpointLimits(inner, lambda: getattr(runtime(), "guards", None)),
        max_bytes=server.max_body_bytes,
        per_read=server.body_timeout,
        on_refusal=audit,
    )
    if settings.gateway.routes:
        limited = GatewayDispatch(inner, limited)
    checked = RequestLimits(
        limited,
        max_headers=server.max_headers,
        max_header_bytes=server.max_header_bytes,
        audit=lambda: getattr(runtime(), "audit", None),
    )
    return SecurityHeaders(
        ErrorBoundary(checked),
        hsts_max_age=settings.server.hsts_max_age,
        behind_tls_proxy=bool(settings.server.trusted_proxies),
    )
