"""Servers in one event loop: each answers once started, only the marked app's requests
leave the access log, and one stop ends them all (``bastion.demo.servers``)."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bastion.demo.servers import SkipUnlogged, Unlogged, listen, serving


def _app(name: str) -> Starlette:
    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse(name)

    return Starlette(routes=[Route("/", hello)])


def test_uvicorn_still_has_the_hook_the_servers_replace() -> None:
    # The demo's servers leave signals to their group by overriding this method; were it
    # renamed, each server would install its own handlers again.
    assert callable(uvicorn.Server.capture_signals)


async def test_servers_answer_log_only_what_is_not_marked_and_stop_together(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = listen("127.0.0.1", 0), listen("127.0.0.1", 0)
    ports = [sock.getsockname()[1] for sock in (first, second)]
    access = logging.getLogger("uvicorn.access")
    skip = SkipUnlogged()
    access.addFilter(skip)
    try:
        async with serving() as servers:
            await servers.start(uvicorn.Config(_app("logged"), log_config=None), first)
            await servers.start(uvicorn.Config(Unlogged(_app("quiet")), log_config=None), second)
            with caplog.at_level(logging.INFO, logger="uvicorn.access"):
                async with aiohttp.ClientSession() as http:
                    answers = []
                    for port in ports:
                        async with http.get(f"http://127.0.0.1:{port}/") as answer:
                            answers.append(await answer.text())
            assert answers == ["logged", "quiet"]
            servers.stop()
            await asyncio.wait_for(servers.wait(), timeout=10)
    finally:
        access.removeFilter(skip)
    logged = [record for record in caplog.records if record.name == "uvicorn.access"]
    assert len(logged) == 1, "only the unmarked server's request is logged"
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
