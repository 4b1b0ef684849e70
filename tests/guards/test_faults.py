"""Fault injection with real components: an upstream that resets the connection after
reading the request, one that is slow, one that fails. The app's writes are neither
lost silently nor duplicated by the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.clock import FixedClock
from tests.gateway.conftest import GatewayHarness, gateway_app
from tests.support.recorder import ResetServer

CONFIG = """
issuer = "http://127.0.0.1:8000"
[[gateway.upstreams]]
name = "reset"
url = "http://127.0.0.1:{port}"
connect_timeout = "1s"
read_timeout = "1s"
total_timeout = "2s"
retries = {{ attempts = 2, base = "10ms", cap = "100ms", budget_floor = 100 }}
breaker = {{ enabled = false }}
[[gateway.routes]]
name = "write"
methods = ["POST"]
path = "/orders"
upstream = "reset"
auth = "bastion"
[gateway.routes.input.body]
type = "object"
[[gateway.routes]]
name = "keyed"
methods = ["POST"]
path = "/payments"
upstream = "reset"
auth = "bastion"
idempotency = {{}}
[gateway.routes.input.body]
type = "object"
[[gateway.routes]]
name = "read"
methods = ["GET"]
path = "/orders"
upstream = "reset"
auth = "bastion"
"""


@pytest.fixture
def reset_server() -> Iterator[ResetServer]:
    import asyncio
    import threading

    server = ResetServer()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    yield server
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture
def gw(
    tmp_path: Path, reset_server: ResetServer, environ: dict[str, str], now: FixedClock
) -> Iterator[GatewayHarness]:
    body = CONFIG.format(port=reset_server.port)
    with gateway_app(tmp_path, body, environ, clock=now) as harness:
        yield harness


def test_reset_on_a_plain_write_is_not_retried(
    gw: GatewayHarness, reset_server: ResetServer
) -> None:
    """RFC 9110 §9.2.2: a POST that may have been processed is never sent twice."""
    answer = gw.client.post("/api/orders", json={}, headers=gw.bearer(gw.mint()))
    assert answer.status_code == 502
    assert reset_server.requests == 1


def test_reset_on_a_read_is_retried(gw: GatewayHarness, reset_server: ResetServer) -> None:
    answer = gw.client.get("/api/orders", headers=gw.bearer(gw.mint()))
    assert answer.status_code == 502
    assert reset_server.requests == 3  # the first try and two retries


def test_reset_on_a_keyed_write_settles_the_key(
    gw: GatewayHarness, reset_server: ResetServer
) -> None:
    headers = {**gw.bearer(gw.mint()), "idempotency-key": '"k-1"'}
    assert gw.client.post("/api/payments", json={}, headers=headers).status_code == 502
    sent = reset_server.requests
    again = gw.client.post("/api/payments", json={}, headers=headers)
    assert again.status_code == 409
    assert again.json()["type"] == "urn:bastion:problem:idempotency-outcome-unknown"
    assert reset_server.requests == sent
