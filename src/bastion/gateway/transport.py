"""How the gateway's HTTP client reaches the network: the connector behind each session.

Every session the gateway opens (an upstream's calls, an upstream's token endpoint, an
external issuer's JWKS) takes its aiohttp connector from one ``UpstreamTransport``.
Serving uses ``TcpTransport``: aiohttp's ``TCPConnector``, with DNS, sockets and TLS.
Tests inject one that connects each request to an in-process app instead
(``tests/support/inprocess.py``), as httpx's injected transports do: everything above
the connection (request writing, response parsing, pooling, timeouts, retries) is the
same code either way, and a test pays for no socket, thread or server start-up.
"""

from __future__ import annotations

import ssl as ssl_module
from typing import Protocol

import aiohttp

# aiohttp's own defaults, for the sessions that did not choose their pool.
DEFAULT_LIMIT = 100
DEFAULT_KEEPALIVE = 15.0


class UpstreamTransport(Protocol):
    def connector(
        self, *, ssl: ssl_module.SSLContext | bool, limit: int, keepalive_timeout: float
    ) -> aiohttp.BaseConnector:
        """A new connector for one session. ``ssl``: the context for https URLs, True
        for the system's default verification, False for plain http only."""
        ...


class TcpTransport:
    def connector(
        self, *, ssl: ssl_module.SSLContext | bool, limit: int, keepalive_timeout: float
    ) -> aiohttp.BaseConnector:
        return aiohttp.TCPConnector(limit=limit, ssl=ssl, keepalive_timeout=keepalive_timeout)


TCP = TcpTransport()
