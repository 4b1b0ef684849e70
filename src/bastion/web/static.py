"""Bastion's own static files (the passkey script), served from the package.

Scripts are files rather than inline code so the pages' CSP can say ``script-src 'self'``.
"""

from __future__ import annotations

from importlib.resources import files

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_FILES = {"passkeys.js": "text/javascript; charset=utf-8"}


async def static_file(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _FILES:
        raise HTTPException(404)
    body = files("bastion.web").joinpath("static", name).read_bytes()
    return Response(body, media_type=_FILES[name], headers={"cache-control": "no-cache"})


routes = [Route("/static/{name}", static_file, methods=["GET"])]
