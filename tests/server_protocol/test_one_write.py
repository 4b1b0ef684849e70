"""``OneWrite``: a whole answer leaves in one write, and nothing is reordered, lost or
held back (a slow body still gets its head at once; a close sends what is held)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from bastion.web.server_protocol import GuardedHttpTools, OneWrite
from tests.server_protocol.fakes import CycleState, FakeTransport


def _serve(app: Any) -> tuple[GuardedHttpTools, FakeTransport]:
    config = Config(app, log_config=None, lifespan="off", proxy_headers=False)
    protocol = GuardedHttpTools(config=config, server_state=ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def _until(condition: Any) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0)


async def test_a_whole_answer_is_one_write() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hello"})

    protocol, transport = _serve(app)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await _until(lambda: transport.writes)
    for _ in range(3):
        await asyncio.sleep(0)
    [written] = transport.writes
    assert written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert written.endswith(b"\r\n\r\nhello")
    # The next answer on the connection goes through a transport of its own.
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await _until(lambda: len(transport.writes) == 2)
    assert transport.writes[1] == written
    protocol.connection_lost(None)


async def test_a_slow_body_does_not_hold_the_head_back() -> None:
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await release.wait()
        await send({"type": "http.response.body", "body": b"late", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    protocol, transport = _serve(app)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await _until(lambda: transport.writes)
    [head] = transport.writes
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head.endswith(b"transfer-encoding: chunked\r\n\r\n")
    release.set()
    await _until(lambda: len(transport.writes) == 3)
    assert transport.writes[1:] == [b"4\r\nlate\r\n", b"0\r\n\r\n"]
    protocol.connection_lost(None)


async def test_a_close_sends_the_held_head_first() -> None:
    transport = FakeTransport()

    cycle = CycleState()
    one = OneWrite(transport, cycle, asyncio.get_running_loop())
    one.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the answer: passes through
    cycle.response_started = True
    one.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert len(transport.writes) == 1
    one.close()
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n"]
    assert transport.closed
    await asyncio.sleep(0)  # the flush scheduled with the head finds nothing left
    assert len(transport.writes) == 2


async def test_nothing_is_written_after_the_client_left() -> None:
    transport = FakeTransport()

    cycle = CycleState(response_started=True)
    one = OneWrite(transport, cycle, asyncio.get_running_loop())
    one.write(b"HTTP/1.1 200 OK\r\n\r\n")
    cycle.disconnected = True
    await asyncio.sleep(0)
    assert transport.writes == []
    assert one.is_closing() is False
    assert one.get_extra_info("peername") == ("192.0.2.7", 50000)


async def test_an_answered_cycle_is_freed_without_the_garbage_collector() -> None:
    """No reference cycle per request (cycle -> OneWrite -> cycle): each would wait for
    the garbage collector, and many make its young collections frequent and long."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    gc.disable()
    try:
        protocol, transport = _serve(app)
        protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        await _until(lambda: transport.writes)
        first = weakref.ref(protocol.cycle)
        protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        await _until(lambda: len(transport.writes) == 2)
        for _ in range(3):
            await asyncio.sleep(0)
        assert first() is None
        protocol.connection_lost(None)
    finally:
        gc.enable()
