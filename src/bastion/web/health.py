"""Liveness (``/healthz``: the process answers) and readiness (``/readyz``: stores answer)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.web.context import correlation_id
from bastion.web.problems import problem_response

StoreChecks = Callable[[], Awaitable[dict[str, str]]]


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(check_stores: StoreChecks, request: Request) -> Response:
    checks = await check_stores()
    down = sorted(name for name, state in checks.items() if state != "ok")
    if not down:
        return JSONResponse({"status": "ready", "checks": checks})
    return problem_response(
        503,
        title="Not Ready",
        type="urn:bastion:problem:not-ready",
        detail=f"Unavailable: {', '.join(down)}.",
        correlation_id=correlation_id(request.scope),
        checks=checks,
        headers={"retry-after": "5"},
    )


def routes(check_stores: StoreChecks) -> list[Route]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", partial(readyz, check_stores), methods=["GET"]),
    ]
