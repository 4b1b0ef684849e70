"""Upstreams without sockets: an ``UpstreamTransport`` that connects to in-process apps.

``InProcess`` serves ASGI apps at made-up addresses (``http://localhost:<n>``). The
gateway's aiohttp sessions take its connector, whose connections are a pair of
in-memory asyncio transports joining aiohttp's client protocol to uvicorn's httptools
protocol running the app. Both sides speak real HTTP/1.1 (the same writers, parsers,
pooling and timeouts as over a socket); what is missing is the socket, the thread and
the server's start and stop. An address with no app refuses the connection, as a
closed port does.

Keep real sockets (``tests.support.upstream.serve_in_thread``) where the socket is the
point: TLS, resets and refusals at the TCP level, the proxy in front of a store.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import ssl as ssl_module
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.tracing import Trace
from starlette.types import ASGIApp
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from bastion.gateway.http1 import Opener

_ports = itertools.count(1024)


class MemoryTransport(asyncio.Transport):
    """One end of an in-memory connection: what is written here reaches the protocol at
    the other end, in order, on a later turn of the loop (as a socket's data would)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sockname: tuple[str, int],
        peername: tuple[str, int],
    ) -> None:
        super().__init__({"sockname": sockname, "peername": peername})
        self._loop = loop
        self._protocol: asyncio.Protocol | None = None
        self.peer: MemoryTransport | None = None
        self._closing = False
        self._paused = False
        # What arrived while this end's protocol had paused reading, and whether the
        # peer closed meanwhile: delivered in that order on resume.
        self._inbox: deque[bytes] = deque()
        self._ended = False
        self._lost = False

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def is_closing(self) -> bool:
        return self._closing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data or self.peer is None:
            return
        self._loop.call_soon(self.peer._arrive, bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def is_reading(self) -> bool:
        return not self._paused

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self._loop.call_soon(self._deliver)

    def close(self) -> None:
        """Ends the connection: this end's protocol hears of it at once, the peer's (as
        of an end of stream) after what was written before, and only while reading."""
        if self._closing:
            return
        self._closing = True
        self._inbox.clear()
        self._loop.call_soon(self._end)
        if self.peer is not None:
            self.peer._closing = True
            self._loop.call_soon(self.peer._end_of_stream)

    def abort(self) -> None:
        self.close()

    def _arrive(self, data: bytes) -> None:
        self._inbox.append(data)
        self._deliver()

    def _end(self) -> None:
        if not self._lost:
            self._lost = True
            assert self._protocol is not None
            self._protocol.connection_lost(None)

    def _end_of_stream(self) -> None:
        self._ended = True
        self._deliver()

    def _deliver(self) -> None:
        # A socket's end of stream is read like data: not while reading is paused.
        while self._inbox and not self._paused and not self._lost:
            assert self._protocol is not None
            self._protocol.data_received(self._inbox.popleft())
        if self._ended and not self._inbox and not self._paused:
            self._end()


class _Served:
    """One app and the uvicorn configuration its connections share."""

    def __init__(self, app: ASGIApp) -> None:
        self.config = Config(app, log_config=None, lifespan="off", proxy_headers=False)
        self.config.load()
        self.state = ServerState()
        # What uvicorn's server loop adds to every answer (a real upstream's Server field
        # is one of the headers the gateway must strip).
        date = formatdate(usegmt=True).encode()
        self.state.default_headers = [(b"date", date), *self.config.encoded_headers]

    def protocol(self, loop: asyncio.AbstractEventLoop) -> HttpToolsProtocol:
        return HttpToolsProtocol(
            config=self.config, server_state=self.state, app_state={}, _loop=loop
        )


class InProcessConnector(aiohttp.BaseConnector):
    def __init__(self, served: dict[tuple[str, int], _Served], **options: Any) -> None:
        super().__init__(**options)
        self._served = served

    async def _create_connection(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        host, port = req.host, req.port or 80
        served = self._served.get((host, port))
        if served is None:
            refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
            raise aiohttp.ClientConnectorError(req.connection_key, refused)
        client = ResponseHandler(self._loop)
        _join(served, self._loop, client, host, port)
        return client


def _join(
    served: _Served,
    loop: asyncio.AbstractEventLoop,
    client: asyncio.Protocol,
    host: str,
    port: int,
) -> None:
    """Joins a client protocol to a new server protocol for ``served`` in memory."""
    here = ("127.0.0.1", next(_ports))
    client_end = MemoryTransport(loop, here, (host, port))
    server_end = MemoryTransport(loop, (host, port), here)
    client_end.peer, server_end.peer = server_end, client_end
    server = served.protocol(loop)
    client_end.set_protocol(client)
    server_end.set_protocol(server)
    server.connection_made(server_end)
    client.connection_made(client_end)


class InProcess:
    """The gateway's ``UpstreamTransport`` for tests: ``serve(app)`` gives the app an
    address; every connection the gateway opens is to one of these apps."""

    def __init__(self) -> None:
        self._served: dict[tuple[str, int], _Served] = {}

    def serve(self, app: ASGIApp) -> str:
        port = next(_ports)
        self._served[("localhost", port)] = _Served(app)
        return f"http://localhost:{port}"

    def connector(
        self, *, ssl: ssl_module.SSLContext | bool, limit: int, keepalive_timeout: float
    ) -> aiohttp.BaseConnector:
        del ssl  # nothing here is encrypted: keep TLS tests on real sockets
        return InProcessConnector(self._served, limit=limit, keepalive_timeout=keepalive_timeout)

    def opener(self) -> Opener:
        async def open_in_process(
            factory: Callable[[], asyncio.Protocol],
            host: str,
            port: int,
            ssl: ssl_module.SSLContext | None,
        ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
            del ssl  # as for connector(): TLS is tested on real sockets
            served = self._served.get((host, port))
            if served is None:
                raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
            client = factory()
            _join(served, asyncio.get_running_loop(), client, host, port)
            assert isinstance(client.transport, asyncio.BaseTransport)  # type: ignore[attr-defined]
            return client.transport, client  # type: ignore[attr-defined]

        return open_in_process
