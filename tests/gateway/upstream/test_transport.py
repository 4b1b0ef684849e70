"""The gateway's outbound transport: TCP when serving, in process in tests.

The in-process transport stands in for sockets in most gateway tests, so it is held to
what a socket does: bytes arrive whole and in order across flow control, a closed
connection still delivers what was sent before it, and an address nobody serves
refuses the connection.
"""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from bastion.gateway.transport import TCP
from tests.support.inprocess import InProcess
from tests.support.recorder import Answer, Recorder


async def test_serving_connects_over_tcp_with_the_pool_asked_for() -> None:
    context = ssl.create_default_context()
    connector = TCP.connector(ssl=context, limit=7, keepalive_timeout=30)
    try:
        assert isinstance(connector, aiohttp.TCPConnector)
        assert connector.limit == 7
    finally:
        await connector.close()


@pytest.fixture
def served() -> tuple[InProcess, Recorder, str]:
    upstreams = InProcess()
    recorder = Recorder()
    return upstreams, recorder, upstreams.serve(recorder)


async def test_large_bodies_cross_whole_both_ways(served: tuple[InProcess, Recorder, str]) -> None:
    upstreams, recorder, url = served
    # Both over the readers' high-water marks, so each side pauses and resumes reading.
    sent = bytes(range(256)) * 4096
    recorder.default = Answer(raw=sent[::-1])
    connector = upstreams.connector(ssl=False, limit=1, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(2):  # the second request reuses the pooled connection
            async with session.post(url + "/echo", data=sent) as response:
                assert await response.read() == sent[::-1]
    assert [seen.body == sent for seen in recorder.seen] == [True, True]


async def test_what_was_sent_before_a_close_arrives(
    served: tuple[InProcess, Recorder, str],
) -> None:
    upstreams, recorder, url = served
    recorder.default = Answer(raw=b"x" * 1_000_000, headers=[("connection", "close")])
    connector = upstreams.connector(ssl=False, limit=1, keepalive_timeout=30)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url + "/big") as response,
    ):
        assert len(await response.read()) == 1_000_000


async def test_an_address_nobody_serves_refuses_the_connection(
    served: tuple[InProcess, Recorder, str],
) -> None:
    upstreams, recorder, _ = served
    connector = upstreams.connector(ssl=False, limit=1, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get("http://localhost:9/")
    assert recorder.seen == []
