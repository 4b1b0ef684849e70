"""Bastion's own static files (the passkey script, the stylesheet), served from the package.

Scripts and styles are files rather than inline code so the pages' CSP can say
``script-src 'self'; style-src 'self'``. The stylesheet's URL carries a hash of its
content, so it is cached for a year and a new release is fetched at once; the script
keeps a stable URL and is revalidated.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib.resources import files

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.oauth.clients import contrast

STYLESHEET = "bastion.css"
_TYPES = {
    "passkeys.js": "text/javascript; charset=utf-8",
    STYLESHEET: "text/css; charset=utf-8",
}
IMMUTABLE = "public, max-age=31536000, immutable"
_HEX = re.compile(r"[0-9a-f]{6}")


@cache
def _body(name: str) -> bytes:
    # Read once: the files ship inside the package and do not change while it runs.
    return files("bastion.web").joinpath("static", name).read_bytes()


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:16]


@cache
def stylesheet_url() -> str:
    stem, _, suffix = STYLESHEET.rpartition(".")
    return f"/static/{stem}.{fingerprint(_body(STYLESHEET))}.{suffix}"


def text_on(hex_color: str) -> str:
    """Black or white, whichever contrasts more with the colour: at least 4.58:1 for any
    colour, so a button's label always meets WCAG 2.2 AA (1.4.3)."""
    on_black, on_white = contrast(hex_color, "#000000"), contrast(hex_color, "#ffffff")
    return "#000000" if on_black >= on_white else "#ffffff"


def accent_url(hex_color: str) -> str:
    return f"/static/accent/{hex_color.lstrip('#').lower()}.css"


async def accent_sheet(request: Request) -> Response:
    """An app's accent colour as a stylesheet: a URL per colour, so it is cached forever
    and the pages' CSP needs no inline styles."""
    value = request.path_params["color"]
    if not _HEX.fullmatch(value):
        raise HTTPException(404)
    color = f"#{value}"
    # The light scheme only: the dark one keeps Bastion's colours, whose contrast against
    # its dark cards is known (an accent checked against white may vanish on them).
    body = (
        "@media (prefers-color-scheme: light){"
        f":root{{--accent:{color};--accent-text:{text_on(color)}}}}}\n"
    ).encode()
    return Response(body, media_type=_TYPES[STYLESHEET], headers={"cache-control": IMMUTABLE})


async def static_file(request: Request) -> Response:
    name = request.path_params["name"]
    if name == stylesheet_url().rsplit("/", 1)[1]:
        return Response(
            _body(STYLESHEET), media_type=_TYPES[STYLESHEET], headers={"cache-control": IMMUTABLE}
        )
    if name not in _TYPES or name == STYLESHEET:
        raise HTTPException(404)
    return Response(_body(name), media_type=_TYPES[name], headers={"cache-control": "no-cache"})


routes = [
    Route("/static/accent/{color}.css", accent_sheet, methods=["GET"]),
    Route("/static/{name}", static_file, methods=["GET"]),
]
