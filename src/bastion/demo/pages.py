"""The demo app's one page and its two static files.

Rendered by Jinja2 with autoescaping, under a CSP as strict as that of Bastion's own
pages (no inline script or style), which also lets in Bastion's stylesheet from the
issuer: the page looks like the sign-in it sends people to.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from bastion.demo.actions import ACTIONS
from bastion.demo.sessions import Session
from bastion.demo.tokens import claims, decoded, fingerprint, iso, utc

STATIC = {"demo.js": "text/javascript; charset=utf-8", "demo.css": "text/css; charset=utf-8"}
TOKEN_ACTIONS = frozenset({"refresh", "reuse-refresh", "revoke"})


def policy(issuer: str) -> str:
    return (
        f"default-src 'none'; script-src 'self'; style-src 'self' {issuer}; img-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


@dataclass(frozen=True)
class PageFacts:
    """What the page says that does not change while the demo runs."""

    issuer: str
    stylesheet: str
    user: str
    password_file: str


@dataclass(frozen=True)
class Expiry:
    moment: float
    iso: str
    utc: str


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("bastion.demo", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _token_view(session: Session) -> dict[str, Any]:
    tokens = session.tokens
    if tokens is None:
        return {"tokens": None}
    access = decoded(tokens.access_token) or {}
    exp = access.get("exp")
    expires = (
        Expiry(float(exp), iso(exp), utc(exp))
        if isinstance(exp, int | float) and not isinstance(exp, bool)
        else None
    )
    identity = decoded(tokens.id_token) if tokens.id_token else None
    return {
        "tokens": tokens,
        "access": claims(access),
        "expires": expires,
        "bound": "cnf" in access,
        "identity": claims(identity) if identity else None,
        "refresh": fingerprint(tokens.refresh_token) if tokens.refresh_token else None,
        "rotations": session.rotations,
    }


def render(facts: PageFacts, session: Session | None, problem: str | None = None) -> str:
    current = session or Session()
    return (
        _environment()
        .get_template("app.html")
        .render(
            issuer=facts.issuer,
            stylesheet=facts.stylesheet,
            user=facts.user,
            password_file=facts.password_file,
            problem=problem,
            answer=current.answer,
            note_actions=[a for a in ACTIONS if a.name not in TOKEN_ACTIONS],
            token_actions=[a for a in ACTIONS if a.name in TOKEN_ACTIONS],
            **_token_view(current),
        )
    )


def page(
    facts: PageFacts, session: Session | None, problem: str | None = None, status: int = 200
) -> HTMLResponse:
    return HTMLResponse(
        render(facts, session, problem),
        status_code=status,
        headers={"content-security-policy": policy(facts.issuer), "cache-control": "no-store"},
    )


@cache
def _static_body(name: str) -> bytes:
    return files("bastion.demo").joinpath("static", name).read_bytes()


async def static_file(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC:
        raise HTTPException(404)
    return Response(
        _static_body(name), media_type=STATIC[name], headers={"cache-control": "no-cache"}
    )
