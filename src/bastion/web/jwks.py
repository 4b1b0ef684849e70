"""The public keys that verify Bastion's signatures (RFC 7517 JWK Set)."""

from __future__ import annotations

from functools import partial

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.crypto.signing import SigningKeys


async def jwks(keys: SigningKeys, cache_control: str, _request: Request) -> Response:
    await keys.refresh_if_stale()
    return Response(
        orjson.dumps(keys.jwks()),
        media_type="application/jwk-set+json",
        headers={"cache-control": cache_control},
    )


def routes(keys: SigningKeys, *, max_age: float) -> list[Route]:
    cache_control = f"public, max-age={int(max_age)}"
    return [Route("/jwks.json", partial(jwks, keys, cache_control), methods=["GET"])]
