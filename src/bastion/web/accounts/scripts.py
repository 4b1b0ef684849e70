"""Answers to the pages' scripts (the passkey ceremonies): JSON with ``error`` and, when
the page should go somewhere else, ``redirect``.

Helpers raise ``ProblemError`` (a body that is not a JSON object, an expired page, a
sign-in that is needed); ``script_route`` is the boundary that turns it into the answer
the script reads.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.authserver.browser import Browser
from bastion.errors import ProblemError
from bastion.web.oauth.answers import PageHandler


def script_error(message: str, status: int = 400, redirect: str | None = None) -> Response:
    """An answer to the page's script: it shows ``error`` and follows ``redirect``."""
    body = {"error": message} | ({"redirect": redirect} if redirect else {})
    return JSONResponse(body, status_code=status)


def string_field(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) else None


def script_route(path: str, handler: PageHandler, browser: Browser) -> Route:
    """A POST route for a page's script; a ``ProblemError`` becomes its JSON error."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(browser, request)
        except ProblemError as exc:
            redirect = exc.extensions.get("redirect")
            return script_error(exc.detail, exc.status, redirect if redirect else None)

    return Route(path, endpoint, methods=["POST"])
