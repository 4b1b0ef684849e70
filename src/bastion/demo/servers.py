"""Several uvicorn servers in one process and one event loop: Bastion and the demo app.

Each serves on a socket bound before anything starts, so a port in use is reported at
once and by name; given a socket, uvicorn prints no address of its own, and the demo
prints the ones people should open, with the issuer's host. The servers leave signals
to ``Servers``: Ctrl-C stops them all gracefully, a second Ctrl-C at once.

They share uvicorn's loggers, so the access log would list the demo app's requests
among Bastion's; ``Unlogged`` marks a server's requests so ``SkipUnlogged`` drops their
lines, and the log shows what reached Bastion.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

_unlogged: ContextVar[bool] = ContextVar("bastion_demo_unlogged", default=False)


class Unlogged:
    """ASGI middleware: this app's requests leave no access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn writes the access log line from the request's own task, inside this call.
        reset = _unlogged.set(True)
        try:
            await self.app(scope, receive, send)
        finally:
            _unlogged.reset(reset)


class SkipUnlogged(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _unlogged.get()


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket; ``OSError`` (say, the port is in use) before any server
    starts."""
    return socket.create_server((host, port), backlog=2048)


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Each server would install its own handlers and restore the previous ones on
        # exit; ``Servers`` handles the signals for all of them instead.
        yield


class Servers:
    """Start servers one by one (each is answering when ``start`` returns), then wait
    for a signal to stop them all."""

    def __init__(self) -> None:
        self._running: list[tuple[_Server, asyncio.Task[None]]] = []

    def stop(self) -> None:
        for server, _ in self._running:
            server.force_exit = server.should_exit
            server.should_exit = True

    async def start(self, config: uvicorn.Config, sock: socket.socket) -> None:
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        self._running.append((server, task))
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("the server stopped while starting")
            await asyncio.sleep(0.02)

    async def wait(self) -> None:
        await asyncio.gather(*(task for _, task in self._running))


@asynccontextmanager
async def serving() -> AsyncIterator[Servers]:
    """``Servers`` that stop on SIGINT and SIGTERM, and when the block ends."""
    servers = Servers()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, servers.stop)
    try:
        yield servers
    finally:
        servers.stop()
        await servers.wait()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)
