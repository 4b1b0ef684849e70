"""How the gateway's HTTP clients reach the network.

The upstream calls (``bastion.gateway.http1``) take their connections from the
transport's ``opener``; the other sessions the gateway opens (an upstream's token
endpoint, an external issuer's JWKS) take their aiohttp connector from it.
Serving uses ``TcpTransport``: sockets, DNS and TLS.
Tests inject one that connects each request to an in-process app instead
(``tests/support/inprocess.py``), as httpx's injected transports do: everything above
the connection (request writing, response parsing, pooling, timeouts, retries) is the
same code either way, and a test pays for no socket, thread or server start-up.
"""

from __future__ import annotations

import ssl as ssl_module
from typing import Protocol

import aiohttp

from bastion.gateway.http1 import Opener, open_tcp

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

    def opener(self) -> Opener:
        """How the upstream calls' pool makes a connection."""
        ...


class TcpTransport:
    def connector(
        self, *, ssl: ssl_module.SSLContext | bool, limit: int, keepalive_timeout: float
    ) -> aiohttp.BaseConnector:
        return aiohttp.TCPConnector(limit=limit, ssl=ssl, keepalive_timeout=keepalive_timeout)

    def opener(self) -> Opener:
        return open_tcp


TCP = TcpTransport()
