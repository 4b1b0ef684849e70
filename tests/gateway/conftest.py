"""Bastion's gateway in front of upstreams served in process.

``gateway_app`` builds the app from a TOML text, runs it under Starlette's TestClient
(the whole ASGI stack, lifespan included) and mints access tokens through the runtime,
so tests exercise real signatures, stores and HTTP/1.1 to the upstream. Upstreams are
ASGI apps behind ``InProcess`` (tests/support/inprocess.py): real HTTP without a socket
or a server thread. Tests about the socket itself (TLS, resets, the full served stack)
use ``serve_in_thread`` and the default TCP transport.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from bastion import wiring
from bastion.audit.sinks import MemorySink
from bastion.authserver.access import Authentication
from bastion.clock import Clock
from bastion.config import Settings, load_settings
from bastion.gateway.transport import TCP, UpstreamTransport
from bastion.runtime import Runtime
from bastion.web.app import build_app
from tests.conftest import write_config
from tests.support import schema
from tests.support.inprocess import InProcess
from tests.support.recorder import Recorder

ISSUER = "http://127.0.0.1:8000"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class GatewayHarness:
    client: TestClient
    settings: Settings
    opened: dict[str, Runtime]
    audit: MemorySink

    def events(self, action: str) -> list[dict[str, Any]]:
        return [r for r in self.audit.records if r["action"] == action]

    @property
    def runtime(self) -> Runtime:
        return self.opened["runtime"]

    def mint(
        self,
        subject: str = "alice",
        *,
        client_id: str = "mobile",
        scope: tuple[str, ...] = (),
        audience: tuple[str, ...] = (),
        lifetime: float | None = None,
        acr: str | None = None,
        auth_time: float | None = None,
        jkt: str | None = None,
    ) -> str:
        """A Bastion access token, minted and indexed like the token endpoint does (bound
        to a DPoP key when ``jkt`` is given)."""
        mint = functools.partial(
            self.runtime.auth.access.mint,
            client_id=client_id,
            who=Authentication(subject, auth_time, acr),
            scope=scope,
            audience=audience,
            lifetime=lifetime,
            jkt=jkt,
        )
        token, _ = self.client.portal.call(mint)  # type: ignore[union-attr]
        return str(token)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a coroutine function in the app's event loop."""
        return self.client.portal.call(fn, *args)  # type: ignore[union-attr]

    def bearer(self, token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}


@contextmanager
def gateway_app(
    tmp_path: Path,
    body: str,
    environ: dict[str, str],
    *,
    clock: Clock | None = None,
    raise_server_exceptions: bool = True,
    transport: UpstreamTransport = TCP,
) -> Iterator[GatewayHarness]:
    settings = load_settings(write_config(tmp_path, body), environ)
    asyncio.run(schema.migrate(settings))
    opened: dict[str, Runtime] = {}
    sink = MemorySink()

    @asynccontextmanager
    async def open_runtime() -> AsyncIterator[Runtime]:
        async with wiring.open_runtime(
            settings, environ=environ, clock=clock, audit_sinks=(sink,), transport=transport
        ) as runtime:
            opened["runtime"] = runtime
            yield runtime

    app = build_app(settings, open_runtime)
    with TestClient(
        app, base_url=settings.issuer, raise_server_exceptions=raise_server_exceptions
    ) as client:
        yield GatewayHarness(client, settings, opened, sink)


@contextmanager
def behind_recorder(
    tmp_path: Path,
    template: str,
    recorder: Recorder,
    environ: dict[str, str],
    clock: Clock,
    upstreams: InProcess | None = None,
    **values: Any,
) -> Iterator[GatewayHarness]:
    """The gateway configured by ``template`` (``{url}`` = the recorder's address, served
    in process next to whatever ``upstreams`` already serves)."""
    upstreams = upstreams or InProcess()
    url = upstreams.serve(recorder)
    body = template.format(url=url, **values)
    with gateway_app(tmp_path, body, environ, clock=clock, transport=upstreams) as harness:
        yield harness
