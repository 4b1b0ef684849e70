"""Routes compiled once at start-up: templates, validators, allowlists and their upstream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.gateway.router import Router
from bastion.gateway.settings import GatewaySettings, RouteSettings
from bastion.gateway.shaping import compile_allowlist
from bastion.gateway.templates import PathTemplate
from bastion.gateway.upstream import Upstream
from bastion.gateway.validation import InputRules
from bastion.guards.settings import LimitSettings

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONDITIONAL_HEADERS = frozenset(
    {"if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range"}
)
# Request headers an app may send through; anything else stays at the gateway unless a
# route lists it in forward_headers. Authorization and cookies never pass.
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "accept",
        "accept-language",
        "content-type",
        "content-language",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "user-agent",
    }
)


@dataclass(frozen=True)
class Route:
    settings: RouteSettings
    upstream: Upstream
    target: PathTemplate
    lookup: PathTemplate | None
    input: InputRules | None
    allow: dict[str, Any] | None
    internal_scopes: tuple[str, ...]
    forwarded: frozenset[str]
    max_body: int
    # The answer must be read whole (owner check, id to record, or shaping).
    buffers: bool
    # The path parameter that names the object (audit, ownership registry).
    id_param: str | None
    # The registry or a look-up must be asked before forwarding.
    checks_ownership: bool
    # Rate limits known before the token is checked (ip, route, global), and after.
    limits_before: tuple[LimitSettings, ...]
    limits_after: tuple[LimitSettings, ...]

    @property
    def buffers_answer(self) -> bool:
        """Read the whole answer: checks, shaping, paging or a stale copy need it."""
        settings = self.settings
        return self.buffers or settings.pagination is not None or settings.fallback == "stale"

    @property
    def label(self) -> str:
        return self.settings.label

    def object_id(self, params: dict[str, str]) -> str | None:
        return params.get(self.id_param) if self.id_param else None


def compile_routes(
    settings: GatewaySettings, upstreams: dict[str, Upstream], max_body_bytes: int
) -> Router[Route]:
    """Raises ``ValueError`` naming the route whose schema or template does not compile."""
    entries = []
    for route in settings.routes:
        try:
            compiled = _compile(route, upstreams[route.upstream], max_body_bytes)
        except ValueError as exc:
            raise ValueError(f"route {route.label}: {exc}") from exc
        entries.append((PathTemplate.parse(route.path), route.methods, compiled))
    return Router(entries)


def _forwarded(route: RouteSettings, upstream: Upstream) -> frozenset[str]:
    names = FORWARDED_REQUEST_HEADERS | set(route.forward_headers)
    if route.idempotency is not None:
        # The upstream may deduplicate too (draft-ietf-httpapi-idempotency-key-header).
        names |= {"idempotency-key"}
    if route.objects.response_owner is not None:
        # A 304 or 412 answer would say "exists, unchanged" about someone else's object
        # before the owner check could see a body.
        names -= CONDITIONAL_HEADERS
    if upstream.static is not None:
        names -= {upstream.static.header}
    return frozenset(names)


def _compile(route: RouteSettings, upstream: Upstream, max_body_bytes: int) -> Route:
    objects = route.objects
    params = PathTemplate.parse(route.path).params
    return Route(
        settings=route,
        upstream=upstream,
        target=PathTemplate.parse(route.upstream_path or route.path),
        lookup=None if objects.lookup is None else PathTemplate.parse(objects.lookup),
        input=None if route.input is None else InputRules.compile(route.input),
        allow=None if route.response.allow is None else compile_allowlist(route.response.allow),
        internal_scopes=route.upstream_scopes
        if route.upstream_scopes is not None
        else (*route.scopes, *route.any_scopes),
        forwarded=_forwarded(route, upstream),
        max_body=max_body_bytes
        if route.max_body_bytes is None
        else min(max_body_bytes, route.max_body_bytes),
        buffers=bool(objects.response_owner or objects.records or route.response.allow is not None),
        id_param=objects.id_param or (params[-1] if params else None),
        checks_ownership=bool(objects.owned or objects.records or objects.lookup),
        limits_before=tuple(limit for limit in route.limits if limit.before_authentication)
        if not route.is_public
        else route.limits,
        limits_after=tuple(limit for limit in route.limits if not limit.before_authentication)
        if not route.is_public
        else (),
    )
