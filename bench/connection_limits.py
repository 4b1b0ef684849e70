"""Probe what a running server does at the connection limits (docs/performance.md,
"Granian and the connection limits"). A probe, not a benchmark: it prints what each
hostile client got and after how long.

    python -m bench.connection_limits PORT [PROBE ...]

Start the server first, e.g. ``bastion serve -c bastion.toml`` or
``granian --interface asgi --factory --http 1 bastion.wiring:create_app`` with
``BASTION_CONFIG`` set. The stalled body is sent to ``/token``, which reads its body.
"""

from __future__ import annotations

import http.client
import socket
import sys
import time
from collections.abc import Callable

HOST = "127.0.0.1"
WAIT = 70.0


def _connect(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=WAIT)


def _until_closed(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError) as exc:
        data += f"<{type(exc).__name__}>".encode()
    return data


def _head(data: bytes) -> bytes:
    return b" | ".join(data.split(b"\r\n")[:3])


def slow_headers(port: int) -> bytes:
    """Headers that stop before the blank line."""
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        return _head(_until_closed(sock))


def idle(port: int) -> bytes:
    """One request answered, then nothing: when does the server close?"""
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        first = sock.recv(65536)
        return first.split(b"\r\n")[0] + b", then " + _head(_until_closed(sock))


def many_headers(port: int, count: int = 150) -> bytes:
    fields = b"".join(b"x-h%d: v\r\n" % i for i in range(count))
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + fields + b"\r\n")
        return _head(sock.recv(65536))


def large_header(port: int, size: int) -> bytes:
    with _connect(port) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * size + b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError) as exc:
            return f"<{type(exc).__name__} while sending>".encode()
        return _head(sock.recv(65536))


def stalled_body(port: int) -> bytes:
    """A body that stops after 11 of its 100 declared bytes."""
    with _connect(port) as sock:
        sock.sendall(
            b"POST /token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded"
            b"\r\ncontent-length: 100\r\n\r\ngrant_type="
        )
        return _head(_until_closed(sock))


def requests_per_connection(port: int, count: int = 2000) -> bytes:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        for i in range(count):
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            if (response.getheader("connection") or "").lower() == "close":
                return b"answer %d says connection: close" % (i + 1)
        return b"%d answered, none says connection: close" % count
    finally:
        connection.close()


PROBES: dict[str, Callable[[int], bytes]] = {
    "slow_headers": slow_headers,
    "idle": idle,
    "many_headers": many_headers,
    "header_64k": lambda port: large_header(port, 65_536),
    "header_1m": lambda port: large_header(port, 1_000_000),
    "stalled_body": stalled_body,
    "requests": requests_per_connection,
}


def main(argv: list[str]) -> None:
    port = int(argv[0])
    for name in argv[1:] or list(PROBES):
        started = time.monotonic()
        outcome = PROBES[name](port)
        print(f"{name:<14} {time.monotonic() - started:5.1f} s  {outcome[:140]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
