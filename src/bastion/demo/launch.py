"""The demo, running: Bastion serves, the other user's note is created through its
gateway, then the demo app serves; all in one process until Ctrl-C.

The notes service runs beside them as its own process (``examples/notes_service.py``);
it is waited for before the first note goes through the gateway, so that the note is not
refused as an upstream failure.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from bastion import wiring
from bastion.cli.serve import uvicorn_options
from bastion.config import Settings
from bastion.demo.actions import Scenario
from bastion.demo.app import AppSettings, demo_app
from bastion.demo.pages import PageFacts
from bastion.demo.servers import SkipUnlogged, Unlogged, listen, serving
from bastion.demo.users import CLIENT_ID, DEMO_USER, OTHER_USER, password_file, seed_note
from bastion.web.app import build_app
from bastion.web.static import stylesheet_url

SCOPE = "openid profile notes:read notes:write"
UPSTREAM_WAIT = 15.0
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Demo:
    settings: Settings
    directory: Path
    user_ids: dict[str, str]
    upstream_port: int
    app_port: int

    @property
    def app_origin(self) -> str:
        return f"http://{LOOPBACK}:{self.app_port}"

    @property
    def upstream(self) -> str:
        return f"http://localhost:{self.upstream_port}"

    @property
    def gateway(self) -> str:
        return self.settings.issuer + self.settings.gateway.prefix


async def _reachable(port: int, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection(LOOPBACK, port)
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the notes service did not start on port {port}") from None
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return


def _quiet_logs() -> None:
    """The terminal shows Bastion's access log and what goes wrong; uvicorn's start and
    stop lines would name the bound address, and the demo says what to open instead."""
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").addFilter(SkipUnlogged())


@contextmanager
def _unlogged_setup() -> Iterator[None]:
    """The note the demo creates for the other user is setup, not part of the walkthrough
    the access log narrates."""
    access = logging.getLogger("uvicorn.access")
    access.disabled = True
    try:
        yield
    finally:
        access.disabled = False


async def run(
    demo: Demo, sockets: tuple[socket.socket, socket.socket], ready: Callable[[], None]
) -> None:
    """Serve until a signal; ``sockets`` are Bastion's and the app's, already listening."""
    settings = demo.settings
    bastion = build_app(settings, lambda: wiring.open_runtime(settings), served=True)
    bastion_config = uvicorn.Config(bastion, **uvicorn_options(settings))
    _quiet_logs()  # after the Config, which configures uvicorn's logging
    app_facts = PageFacts(
        issuer=settings.issuer,
        stylesheet=settings.issuer + stylesheet_url(),
        user=DEMO_USER,
        password_file=str(password_file(demo.directory, DEMO_USER)),
    )
    async with serving() as servers:
        await servers.start(bastion_config, sockets[0])
        await _reachable(demo.upstream_port, UPSTREAM_WAIT)
        with _unlogged_setup():
            note = await seed_note(bastion.runtime, demo.gateway, demo.user_ids[OTHER_USER])
        app = demo_app(
            AppSettings(
                origin=demo.app_origin,
                issuer=settings.issuer,
                gateway=demo.gateway,
                client_id=CLIENT_ID,
                scope=SCOPE,
                facts=app_facts,
            ),
            Scenario(OTHER_USER, note, demo.upstream),
        )
        app_config = uvicorn.Config(
            Unlogged(app), log_config=None, lifespan="on", server_header=False
        )
        await servers.start(app_config, sockets[1])
        ready()
        await servers.wait()


def sockets_for(
    settings: Settings, app_port: int, upstream_port: int
) -> tuple[socket.socket, socket.socket]:
    """Bastion's socket and the app's, listening. The notes service binds its port
    itself, so that one is only tried. ``OSError`` names the first port that is taken
    (its ``strerror`` is a sentence)."""
    wanted = (
        ("Bastion", settings.server.host, settings.server.port),
        ("the demo app", LOOPBACK, app_port),
        ("the notes service", LOOPBACK, upstream_port),
    )
    opened: list[socket.socket] = []
    try:
        for what, host, port in wanted:
            try:
                opened.append(listen(host, port))
            except OSError as exc:
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise OSError(
                    exc.errno, f"{what} cannot listen on {host}:{port} ({reason})"
                ) from exc
    except OSError:
        for sock in opened:
            sock.close()
        raise
    opened.pop().close()
    return opened[0], opened[1]
