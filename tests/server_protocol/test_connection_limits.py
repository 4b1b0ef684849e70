"""Resource limits on a real socket, under ``bastion serve``'s protocol: header size and
count (RFC 6585 §5, 431), slow headers (slowloris, 408), slow bodies (408), and the
per-connection request cap. Every refusal is audited."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bastion import wiring
from bastion.audit.sinks import MemorySink
from bastion.config import load_settings
from bastion.web.app import build_app
from bastion.web.server_protocol import GuardedHttpTools
from tests.conftest import write_config
from tests.support import schema
from tests.support.recorder import Recorder
from tests.support.upstream import serve_in_thread

CONFIG = """
[server]
max_headers = 20
max_header_bytes = 2048
header_timeout = "1s"
body_timeout = "500ms"
max_requests_per_connection = 2
[[gateway.upstreams]]
name = "api"
url = "{url}"
[[gateway.routes]]
methods = ["POST"]
path = "/echo"
upstream = "api"
auth = "public"
"""


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@contextmanager
def guarded_bastion(
    tmp_path: Path, environ: dict[str, str], sink: MemorySink, config: str
) -> Iterator[int]:
    """Bastion served by uvicorn with ``GuardedHttpTools``, as ``bastion serve`` runs it;
    the limits reach the protocol through the app's lifespan state."""
    settings = load_settings(write_config(tmp_path, config), environ)
    asyncio.run(schema.migrate(settings))
    app = build_app(
        settings, lambda: wiring.open_runtime(settings, environ=environ, audit_sinks=(sink,))
    )
    with serve_in_thread(app, lifespan="on", http=GuardedHttpTools) as base:
        yield int(base.rsplit(":", 1)[1])


@pytest.fixture
def server(
    tmp_path: Path, environ: dict[str, str], sink: MemorySink
) -> Iterator[tuple[int, Recorder]]:
    recorder = Recorder()
    with (
        serve_in_thread(recorder) as url,
        guarded_bastion(tmp_path, environ, sink, CONFIG.format(url=url)) as port,
    ):
        yield port, recorder


def _refusals(sink: MemorySink, expected: int = 0) -> list[str]:
    """The refusals audited so far, waiting up to 5 s for ``expected`` of them: an error
    answered by Starlette's error middleware reaches the client before the exception
    travels back out to the middleware that audits it."""
    deadline = time.monotonic() + 5
    while True:
        found = [
            r["details"]["limit"] for r in sink.records if r["action"] == "guards.resource.refused"
        ]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def _exchange(port: int, raw: bytes, *, wait: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_too_many_or_too_large_headers(server: tuple[int, Recorder], sink: MemorySink) -> None:
    port, _recorder = server
    many = b"".join(b"x-h%d: v\r\n" % i for i in range(30))
    answer = _exchange(port, b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + many + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"application/problem+json" in answer
    large = b"x-big: " + b"a" * 3000 + b"\r\n"
    answer = _exchange(port, b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + large + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert _refusals(sink, 2) == ["HeadersTooLarge", "HeadersTooLarge"]


def test_slow_headers_are_cut_off(server: tuple[int, Recorder], sink: MemorySink) -> None:
    port, _ = server
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        time.sleep(0.3)
        sock.sendall(b"x-slow: 1\r\n")  # ... and never the blank line
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in data
    assert time.monotonic() - started < 4
    assert _refusals(sink, 1) == ["header_timeout"]


def test_slow_body_is_cut_off(server: tuple[int, Recorder], sink: MemorySink) -> None:
    port, recorder = server
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b'content-length: 100\r\n\r\n{"a":'
        )
        data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert recorder.count(b"/echo") == 0
    refused = [r for r in sink.records if r["action"] == "gateway.request.refused"]
    assert refused[-1]["details"]["reason"] == "RequestTimeout"
    # Bastion's own endpoints cut slow bodies too.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-"
            b"urlencoded\r\ncontent-length: 100\r\n\r\ngrant_type="
        )
        data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert _refusals(sink, 1) == ["RequestTimeout"]


def test_connections_serve_a_bounded_number_of_requests(server: tuple[int, Recorder]) -> None:
    port, _ = server
    request = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        assert b"connection: close" not in first.lower()
        sock.sendall(request)
        second = b""
        while chunk := sock.recv(65536):
            second += chunk
    assert second.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" in second.lower()


def test_limits_are_per_app_not_per_process(
    server: tuple[int, Recorder], tmp_path: Path, environ: dict[str, str]
) -> None:
    """Two apps served in one process keep their own request caps (2 above, 1 here)."""
    port, _ = server
    other = tmp_path / "other"
    other.mkdir()
    config = "[server]\nmax_requests_per_connection = 1\n"
    request = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
    with guarded_bastion(other, environ, MemorySink(), config) as capped:
        with socket.create_connection(("127.0.0.1", capped), timeout=5) as sock:
            sock.sendall(request)
            only = b""
            while chunk := sock.recv(65536):
                only += chunk
        assert only.startswith(b"HTTP/1.1 200 ")
        assert b"connection: close" in only.lower()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        assert b"connection: close" not in first.lower()
