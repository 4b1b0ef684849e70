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


def _luminance(hex_color: str) -> float:
    """Relative luminance (WCAG 2.2, "relative luminance") of ``#rrggbb``."""
    channels = []
    for i in (1, 3, 5):
        c = int(hex_color[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    red, green, blue = channels
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def text_on(hex_color: str) -> str:
    """Black or white, whichever contrasts more with the colour: at least 4.58:1 for any
    colour, so a button's label always meets WCAG 2.2 AA (1.4.3)."""
    luminance = _luminance(hex_color)
    on_black = (luminance + 0.05) / 0.05
    on_white = 1.05 / (luminance + 0.05)
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
    body = f":root{{--accent:{color};--accent-text:{text_on(color)}}}\n".encode()
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
