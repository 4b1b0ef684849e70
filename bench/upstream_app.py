"""The upstream for bench.gateway: one fixed JSON answer, as cheap as ASGI allows.

It must be much faster than the proxies in front of it so that it is never the
bottleneck; bench.gateway measures it directly in the same run to show that it is not.
The body carries a field (``secret``) that the gateway's response allowlist strips.
"""

from __future__ import annotations

from typing import Any

BODY = b'[{"id":1,"title":"first","secret":"x"},{"id":2,"title":"second","secret":"y"}]'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["method"] in ("POST", "PUT", "PATCH"):
        more = True
        while more:  # drain the request body
            more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
