"""The baseline for bench.gateway: a reverse proxy with no checks at all.

Plain ASGI, one aiohttp ``ClientSession`` with pooled keep-alive connections configured
as Bastion's ``Upstream`` configures its own (same connector limit, keep-alive, timeouts,
cookie jar and skipped headers), so the difference to Bastion is the pipeline, not the
HTTP client. It forwards the method, the path with its query and the body, and returns
the upstream's status, content type and body. The upstream's base URL comes from
``BENCH_UPSTREAM_URL``.

``python -m bench.bare_proxy --port N`` serves it under uvicorn with the settings of
``bastion serve`` (src/bastion/cli/serve.py); other servers import ``bench.bare_proxy:app``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import aiohttp
import uvicorn
from yarl import URL

from bastion import logs

UPSTREAM_ENV = "BENCH_UPSTREAM_URL"


class BareProxy:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100, ssl=False, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=30, connect=2, sock_read=10),
            auto_decompress=True,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        assert self.session is not None
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        target = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        url = self.base + target.decode("ascii") + ("?" + query.decode("ascii") if query else "")
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope["headers"]
            if name == b"content-type"
        ]
        async with self.session.request(
            scope["method"],
            URL(url, encoded=True),
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as response:
            payload = await response.read()
            content_type = response.headers.get("content-type", "application/octet-stream")
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(b"content-type", content_type.encode("latin-1"))],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


app = BareProxy(os.environ.get(UPSTREAM_ENV, "http://127.0.0.1:18771"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18772)
    args = parser.parse_args()
    # The keyword arguments `bastion serve` passes for one worker without TLS.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
        timeout_keep_alive=5,
        access_log=False,  # as `bastion serve` by default (server.access_log)
        log_level="info",
        log_config=logs.uvicorn_log_config(),
    )


if __name__ == "__main__":
    main()
