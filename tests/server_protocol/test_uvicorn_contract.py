"""The private parts of uvicorn that ``bastion.web.server_protocol`` relies on.

If one of these fails after a uvicorn upgrade, the protocol is broken (slow headers are
no longer cut off, or connections are held for ever) even if nothing raises: review
``GuardedHttpTools`` against the new uvicorn before raising its bound in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import inspect
import tomllib
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from packaging.specifiers import SpecifierSet
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from bastion.audit import AuditPipeline
from bastion.audit.sinks import MemorySink
from bastion.web.server_protocol import (
    STATE_KEY,
    UNPUBLISHED,
    ConnectionGuard,
    GuardedHttpTools,
    lifespan_state,
)
from bastion.web.settings import ServerSettings
from tests.server_protocol.fakes import FakeTransport

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

EXTENDED = (
    "connection_made",
    "connection_lost",
    "on_message_begin",
    "on_headers_complete",
    "on_response_complete",
    "_unset_keepalive_if_required",
)
# Read or written on the protocol, and on the cycle of the request being answered.
PROTOCOL_ATTRIBUTES = (
    "loop",
    "transport",
    "client",
    "cycle",
    "app_state",
    "server_state",
    "flow",
    "pipeline",
    "timeout_keep_alive",
    "timeout_keep_alive_handler",
    "_start_asgi_task",
)
CYCLE_ATTRIBUTES = (
    "keep_alive",
    "response_complete",
    "response_started",
    "disconnected",
    "transport",
)


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _answered(transport: FakeTransport, count: int) -> None:
    """Until uvicorn has written ``count`` answers (its ASGI tasks run on the loop)."""
    async with asyncio.timeout(5):
        while transport.written.count(b"HTTP/1.1 204 ") < count:
            await asyncio.sleep(0)


def _protocol(state: dict[str, Any]) -> GuardedHttpTools:
    config = Config(_ok, log_config=None, lifespan="off", proxy_headers=False)
    # The keyword arguments uvicorn's server passes to the class given as http=.
    return GuardedHttpTools(config=config, server_state=ServerState(), app_state=state)


def test_the_installed_uvicorn_is_in_the_supported_range() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    requirement = next(d for d in dependencies if d.startswith("uvicorn"))
    supported = SpecifierSet(requirement.split("]", 1)[1])
    assert supported.contains(uvicorn.__version__), (uvicorn.__version__, str(supported))


def test_the_server_builds_the_protocol_with_these_arguments() -> None:
    parameters = inspect.signature(HttpToolsProtocol.__init__).parameters
    assert {"config", "server_state", "app_state"} <= set(parameters)


@pytest.mark.parametrize("name", EXTENDED)
def test_the_extended_callbacks_exist_on_uvicorns_protocol(name: str) -> None:
    assert callable(getattr(HttpToolsProtocol, name, None)), f"uvicorn has no {name}"
    assert name in vars(GuardedHttpTools)


async def test_the_attributes_read_exist_on_a_connection() -> None:
    protocol = _protocol({})
    transport = FakeTransport()
    protocol.connection_made(transport)
    for name in PROTOCOL_ATTRIBUTES:
        assert hasattr(protocol, name), f"uvicorn's protocol has no {name}"
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    assert isinstance(protocol.cycle, RequestResponseCycle)
    for name in CYCLE_ATTRIBUTES:
        assert hasattr(protocol.cycle, name), f"uvicorn's request cycle has no {name}"
    await _answered(transport, 1)
    protocol.connection_lost(None)


async def test_the_request_cap_takes_keep_alive_away() -> None:
    protocol = _protocol({STATE_KEY: ConnectionGuard(header_timeout=10.0, max_requests=2)})
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    assert protocol.cycle.keep_alive
    await _answered(transport, 1)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    assert not protocol.cycle.keep_alive
    await _answered(transport, 2)
    first, second = transport.written.split(b"HTTP/1.1 204 ")[1:]
    assert b"connection: close" not in first
    assert b"connection: close" in second
    assert transport.closed
    protocol.connection_lost(None)


async def test_the_guard_comes_from_the_lifespan_state() -> None:
    sink = MemorySink()
    server = ServerSettings(header_timeout=3.0, max_requests_per_connection=7)
    state = lifespan_state(server, AuditPipeline([sink]))
    published = _protocol(state)
    published.connection_made(FakeTransport())
    assert published._guard == state[STATE_KEY]
    assert (published._guard.header_timeout, published._guard.max_requests) == (3.0, 7)
    unpublished = _protocol({})
    unpublished.connection_made(FakeTransport())
    assert unpublished._guard is UNPUBLISHED
    published.connection_lost(None)
    unpublished.connection_lost(None)


def test_unpublished_limits_are_the_server_defaults() -> None:
    defaults = ServerSettings()
    assert UNPUBLISHED.header_timeout == defaults.header_timeout
    assert UNPUBLISHED.max_requests == defaults.max_requests_per_connection
    assert UNPUBLISHED.audit is None


async def test_too_slow_headers_get_408_and_an_audit_record() -> None:
    sink = MemorySink()
    protocol = _protocol({STATE_KEY: ConnectionGuard(10.0, 1000, AuditPipeline([sink]))})
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n")
    protocol._too_slow()  # what the header deadline's timer calls once it has passed
    assert transport.written.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"connection: close\r\n" in transport.written
    assert transport.closed
    [record] = sink.records
    assert record["action"] == "guards.resource.refused"
    assert record["actor"] == "ip:192.0.2.7"
    assert record["details"] == {"limit": "header_timeout", "status": 408}
    protocol.connection_lost(None)


async def test_one_timer_follows_the_deadline_across_requests() -> None:
    """The header timer is left running when headers arrive: it must then do nothing,
    wait for a later request's deadline, and still cut off slow headers once due."""
    sink = MemorySink()
    protocol = _protocol({STATE_KEY: ConnectionGuard(10.0, 1000, AuditPipeline([sink]))})
    transport = FakeTransport()
    protocol.connection_made(transport)
    timer = protocol._header_timer
    assert timer is not None
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await _answered(transport, 1)
    assert protocol._deadline is None
    assert protocol._header_timer is timer  # not cancelled: it finds no deadline
    protocol._deadline_check()
    assert protocol._header_timer is None
    assert transport.written.count(b"HTTP/1.1 408 ") == 0
    # The next request arms a timer again; one fired early waits for its deadline.
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n")
    deadline = protocol._deadline
    assert deadline is not None
    assert protocol._header_timer is not None
    protocol._deadline_check()
    assert protocol._header_timer is not None
    assert protocol._header_timer.when() == deadline
    assert not transport.closed
    # Once due, the slow headers get their 408.
    protocol._deadline = protocol.loop.time() - 1
    protocol._deadline_check()
    assert transport.written.count(b"HTTP/1.1 408 ") == 1
    assert transport.closed
    assert [r["details"]["limit"] for r in sink.records] == ["header_timeout"]
    protocol.connection_lost(None)
    assert protocol._header_timer is None


@pytest.mark.parametrize("value", [b"a\r\nx-injected: 1", b"a\nx-injected: 1", b"a\rx"])
async def test_a_header_value_cannot_split_the_answer(value: bytes) -> None:
    """The server checks every header value the app hands it, the gateway's included
    (an upstream's value is passed on as bytes): a CR or LF never reaches the wire.
    Bastion's own layers do not repeat this check; they rely on this one."""

    async def splitting(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"0"), (b"x-upstream", value)]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    config = Config(splitting, log_config=None, lifespan="off", proxy_headers=False)
    protocol = GuardedHttpTools(config=config, server_state=ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    async with asyncio.timeout(5):
        while not transport.closed:
            await asyncio.sleep(0)
    # uvicorn refuses the value before writing anything and drops the connection.
    assert b"x-injected" not in transport.written
    assert b"x-upstream" not in transport.written
    protocol.connection_lost(None)


def test_on_response_complete_is_uvicorns_but_for_the_timer() -> None:
    """The override restates uvicorn's ``on_response_complete``: if uvicorn's changes,
    review the override (this is its source at the version it was written against)."""
    source = inspect.getsource(HttpToolsProtocol.on_response_complete)
    for line in (
        "self.server_state.total_requests += 1",
        "if self.transport.is_closing():",
        "self._unset_keepalive_if_required()",
        "self.flow.resume_reading()",
        "cycle, app = self.pipeline.pop()",
        "self._start_asgi_task(cycle, app)",
        "self.timeout_keep_alive_task = self.loop.call_later(",
    ):
        assert line in source, line


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout() -> None:
    config = Config(_ok, log_config=None, lifespan="off", proxy_headers=False)
    config.timeout_keep_alive = 0.2  # type: ignore[assignment]
    protocol = GuardedHttpTools(config=config, server_state=ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await _answered(transport, 1)
    timer = protocol._idle_timer
    assert timer is not None
    assert protocol.timeout_keep_alive_task is None  # uvicorn's own is not used
    # A request within the timeout keeps the connection; the timer is not replaced.
    await asyncio.sleep(0.1)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    assert protocol._idle_until is None
    await _answered(transport, 2)
    assert protocol._idle_timer is timer
    await asyncio.sleep(0.15)  # the first answer's deadline passes: still open
    assert not transport.closed
    async with asyncio.timeout(2):
        while not transport.closed:
            await asyncio.sleep(0.01)
    protocol.connection_lost(None)
    assert protocol._idle_timer is None
