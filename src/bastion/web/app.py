"""The ASGI application: routes from each area inside the middleware every response passes.

The app is built once the runtime is open, so routers and middleware receive the typed
services they use (``web/routes.py``) instead of looking them up per request.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import traceback
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.config import Settings
from bastion.guards.endpoints import EndpointLimits
from bastion.guards.resources import RequestLimits, refusal_auditor
from bastion.runtime import Runtime
from bastion.web.context import correlation_id
from bastion.web.gateway_edge import GatewayEdge
from bastion.web.middleware import BodyLimit, ErrorBoundary, SecurityHeaders, problem_for
from bastion.web.problems import problem_response
from bastion.web.routes import routes
from bastion.web.server_protocol import lifespan_state

RuntimeOpener = Callable[[], AbstractAsyncContextManager[Runtime]]
ExtraRoutes = Callable[[Runtime], Sequence[BaseRoute]]


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


class BastionApp:
    """The ASGI app: opens the runtime when the server starts (ASGI lifespan), then builds
    the routes and middleware around it and serves them until shutdown.

    Building after the runtime is open lets every router and middleware receive the
    services it uses at construction; a server always runs the lifespan before it sends
    requests.
    """

    def __init__(
        self,
        settings: Settings,
        open_runtime: RuntimeOpener,
        extra_routes: ExtraRoutes | None = None,
        *,
        served: bool = False,
    ) -> None:
        self.settings = settings
        self._open_runtime = open_runtime
        self._extra_routes = extra_routes
        self._served = served
        self._runtime: Runtime | None = None
        self._app: ASGIApp | None = None

    @property
    def runtime(self) -> Runtime:
        """The runtime while the app is started."""
        if self._runtime is None:
            raise RuntimeError("the app is not started (the ASGI lifespan has not run)")
        return self._runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if self._app is None:
            raise RuntimeError("requests arrived before the ASGI lifespan started the app")
        await self._app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The ASGI lifespan protocol, as Starlette's router speaks it: a failure is
        # reported to the server with its traceback and raised again.
        started = False
        await receive()  # lifespan.startup
        try:
            async with self._running(scope):
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()  # lifespan.shutdown
        except BaseException:
            failed = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": failed, "message": traceback.format_exc()})
            raise
        await send({"type": "lifespan.shutdown.complete"})

    @asynccontextmanager
    async def _running(self, scope: Scope) -> AsyncIterator[None]:
        if "state" not in scope:
            raise RuntimeError('the server does not support "state" in the lifespan scope')
        async with self._open_runtime() as runtime:
            extra = self._extra_routes(runtime) if self._extra_routes else ()
            self._runtime = runtime
            self._app = assemble(self.settings, runtime, extra)
            # The server's connection protocol reads its limits from the lifespan state.
            scope["state"].update(lifespan_state(self.settings.server, runtime.audit))
            try:
                if not self._served:
                    yield
                    return
                settle_garbage_collector()
                with on_hangup(runtime.reload):
                    async with runtime.housekeeping():
                        yield
            finally:
                self._app = self._runtime = None


def build_app(
    settings: Settings,
    open_runtime: RuntimeOpener,
    extra_routes: ExtraRoutes | None = None,
    *,
    served: bool = False,
) -> BastionApp:
    """The app; ``open_runtime`` yields the stores and services for its lifetime and
    ``extra_routes`` adds routes built with them (tests, embedding)."""
    return BastionApp(settings, open_runtime, extra_routes, served=served)


def assemble(settings: Settings, runtime: Runtime, extra_routes: Sequence[BaseRoute]) -> ASGIApp:
    """Bastion's routes inside the middleware every response passes, outermost last."""
    inner = Starlette(
        routes=[*routes(runtime), *extra_routes],
        exception_handlers={HTTPException: _http_error, Exception: _unhandled},
    )
    server = settings.server
    limited: ASGIApp = BodyLimit(
        EndpointLimits(inner, runtime.guards),
        max_bytes=server.max_body_bytes,
        per_read=server.body_timeout,
        on_refusal=refusal_auditor(runtime.audit),
    )
    limits = RequestLimits(
        limited,
        max_headers=server.max_headers,
        max_header_bytes=server.max_header_bytes,
        audit=runtime.audit,
    )
    security = SecurityHeaders(
        ErrorBoundary(limits),
        hsts_max_age=server.hsts_max_age,
        behind_tls_proxy=bool(server.trusted_proxies),
    )
    if runtime.gateway is None:
        return security
    # Gateway requests skip the stack for one layer that does what it does (the hot
    # path); they come before the global body limit, as the gateway enforces its own
    # per-route limits (never above the server's) and audits those refusals like every
    # other.
    return GatewayEdge(runtime.gateway, security, security=security, limits=limits)
