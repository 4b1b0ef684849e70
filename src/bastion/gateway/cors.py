"""CORS (Fetch Standard §3.2), denied unless a route declares the origins it serves.

Without a declaration no ``Access-Control-*`` header is ever sent, so a browser keeps
other sites from reading the API; a preflight for such a route answers 404 like any
undeclared method. Credentials are allowed only when the route says so, and never with
a wildcard origin (the settings refuse ``*``).
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.gateway.settings import CorsSettings, RouteSettings


def allowed_origin(cors: CorsSettings | None, origin: str | None) -> bool:
    return cors is not None and origin is not None and origin in cors.origins


def response_headers(cors: CorsSettings | None, origin: str | None) -> list[tuple[bytes, bytes]]:
    """Headers for an actual (non-preflight) response to ``origin``."""
    if cors is None or origin is None or origin not in cors.origins:
        return [(b"vary", b"origin")] if cors is not None else []
    headers = [(b"access-control-allow-origin", origin.encode()), (b"vary", b"origin")]
    if cors.credentials:
        headers.append((b"access-control-allow-credentials", b"true"))
    if cors.expose:
        headers.append((b"access-control-expose-headers", ", ".join(cors.expose).encode()))
    return headers


def preflight(
    routes: Sequence[RouteSettings], origin: str | None, method: str | None, asked: str | None
) -> list[tuple[bytes, bytes]] | None:
    """Headers of a successful preflight, or None to refuse it."""
    route = next((r for r in routes if method in r.methods), None)
    if route is None or route.cors is None or not allowed_origin(route.cors, origin):
        return None
    cors = route.cors
    requested = {h.strip().lower() for h in (asked or "").split(",") if h.strip()}
    if not requested <= {h.lower() for h in cors.headers}:
        return None
    methods = sorted({m for r in routes if r.cors is cors or r.cors == cors for m in r.methods})
    headers = response_headers(cors, origin)
    headers += [
        (b"access-control-allow-methods", ", ".join(methods).encode()),
        (b"access-control-allow-headers", ", ".join(cors.headers).encode()),
        (b"access-control-max-age", str(int(cors.max_age)).encode()),
    ]
    return headers
