"""``bastion check --explain ROUTE``: the steps a route's requests go through, in order,
as the gateway would build them from this configuration."""

from __future__ import annotations

from dataclasses import dataclass

from bastion.errors import NotFound
from bastion.gateway.pipeline import explain
from bastion.gateway.routes import compile_routes
from bastion.gateway.settings import GatewaySettings
from bastion.gateway.upstream import Upstream


@dataclass(frozen=True)
class Explained:
    label: str
    target: str
    steps: list[tuple[str, tuple[str, ...]]]


def explain_route(settings: GatewaySettings, max_body_bytes: int, name: str) -> Explained:
    """The chain of the route named ``name`` (its ``name``, or "METHODS path")."""
    # Upstreams are only described here: nothing is started or connected.
    upstreams = {u.name: Upstream(u) for u in settings.upstreams}
    router = compile_routes(settings, upstreams, max_body_bytes)
    for route in router.values:
        spelled = f"{'|'.join(route.settings.methods)} {route.settings.path}"
        if name in (route.label, spelled):
            target = route.settings.upstream_path or route.settings.path
            return Explained(route.label, f"{route.upstream.name} {target}", explain(route))
    labels = ", ".join(route.label for route in router.values) or "none declared"
    raise NotFound(f"no gateway route {name!r} (routes: {labels})")
