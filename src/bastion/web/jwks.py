"""The public keys that verify Bastion's signatures (RFC 7517 JWK Set)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def jwks(request: Request) -> Response:
    runtime = request.app.state.runtime
    await runtime.keys.refresh_if_stale()
    max_age = int(runtime.settings.keys.jwks_max_age)
    return Response(
        orjson.dumps(runtime.keys.jwks()),
        media_type="application/jwk-set+json",
        headers={"cache-control": f"public, max-age={max_age}"},
    )


routes = [Route("/jwks.json", jwks, methods=["GET"])]
