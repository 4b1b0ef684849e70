"""Bastion's own static files (the passkey script), served from the package.

Scripts are files rather than inline code so the pages' CSP can say ``script-src 'self'``.
"""

from __future__ import annotations

from importlib.resources import files

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_TYPES = {"passkeys.js": "text/javascript; charset=utf-8"}
# Read once: the files ship inside the package and do not change while it runs.
_BODIES = {name: files("bastion.web").joinpath("static", name).read_bytes() for name in _TYPES}


async def static_file(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _TYPES:
        raise HTTPException(404)
    return Response(_BODIES[name], media_type=_TYPES[name], headers={"cache-control": "no-cache"})


routes = [Route("/static/{name}", static_file, methods=["GET"])]
