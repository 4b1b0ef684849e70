"""Routes compiled once at start-up: templates, validators, allowlists and their upstream."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bastion.errors import Hidden
from bastion.gateway.bindings import Binding, Bindings
from bastion.gateway.identifiers import IdForm, canonical
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
    # The path parameter naming the object the request is about (audit, `owned`).
    id_param: str | None
    # The registry or a look-up must be asked before forwarding.
    checks_ownership: bool
    # Rate limits known before the token is checked (ip, route, global), and after.
    limits_before: tuple[LimitSettings, ...]
    limits_after: tuple[LimitSettings, ...]
    # Path parameters brought to their canonical id form: (name, form, is an object id).
    path_ids: tuple[tuple[str, IdForm, bool], ...] = ()
    # The forms of the owned object's ids and of the ids a create records.
    owned_form: IdForm = IdForm.AUTO
    # The path parameter naming the object a create makes, when the app chooses it.
    created_param: str | None = None
    created_form: IdForm = IdForm.AUTO
    # A successful DELETE removes the owned object from the registry.
    forgets: bool = False
    bindings: Bindings | None = None

    @property
    def buffers_answer(self) -> bool:
        """Read the whole answer: checks, shaping, paging or a stale copy need it."""
        settings = self.settings
        return self.buffers or settings.pagination is not None or settings.fallback == "stale"

    @functools.cached_property
    def label(self) -> str:
        # Read several times per request (the chain, the limits, the audit): built once.
        return self.settings.label

    @functools.cached_property
    def limit_scope(self) -> str:
        """The scope of this route's rate-limit counters."""
        return f"route:{self.label}"

    @property
    def needs_document(self) -> bool:
        """The body is read by the gateway (bound fields, or the id to record)."""
        body_bound = self.bindings is not None and bool(self.bindings.body)
        return body_bound or self.settings.objects.id_source[0] == "body"

    def object_id(self, params: dict[str, str]) -> str | None:
        return params.get(self.id_param) if self.id_param else None

    def created_id(self, params: dict[str, str]) -> str | None:
        return params.get(self.created_param) if self.created_param else None

    def canonical_params(self, params: dict[str, str]) -> dict[str, str]:
        """Typed and object-id parameters in their canonical form (``identifiers``).

        An object id that is no id of its form is refused (404); another typed value is
        left for input validation to refuse with its pointer (400).
        """
        out = params
        for name, form, is_object in self.path_ids:
            value = params[name]
            found = canonical(value, form)
            if found is None:
                if is_object:
                    raise Hidden("object id not in an acceptable form")
            elif found != value:
                if out is params:
                    out = dict(params)
                out[name] = found
        return out


def compile_routes(
    settings: GatewaySettings, upstreams: dict[str, Upstream], max_body_bytes: int
) -> Router[Route]:
    """Raises ``ValueError`` naming the route whose schema or template does not compile."""
    rules = compile_input_rules(settings.routes)
    forms = object_forms(settings.routes, rules)
    entries = []
    for route in settings.routes:
        if problems := id_source_problems(route, rules[route.label], forms):
            raise ValueError(f"route {route.label}: {problems[0]}")
        try:
            compiled = _compile(
                route, upstreams[route.upstream], max_body_bytes, rules[route.label], forms
            )
        except ValueError as exc:
            raise ValueError(f"route {route.label}: {exc}") from exc
        entries.append((PathTemplate.parse(route.path), route.methods, compiled))
    return Router(entries)


def compile_input_rules(routes: Sequence[RouteSettings]) -> dict[str, InputRules | None]:
    compiled: dict[str, InputRules | None] = {}
    for route in routes:
        try:
            compiled[route.label] = None if route.input is None else InputRules.compile(route.input)
        except ValueError as exc:
            raise ValueError(f"route {route.label}: {exc}") from exc
    return compiled


def object_forms(
    routes: Sequence[RouteSettings], rules: Mapping[str, InputRules | None]
) -> dict[str, IdForm]:
    """The id form of each object kind, from what its routes declare.

    Every route of a kind must spell its ids the same way, or the registry would record
    an id under one spelling and look it up under another. Raises ``ValueError``.
    """
    declared: dict[str, set[IdForm]] = {}
    for route in routes:
        for kind, form in _declared_forms(route, rules.get(route.label)):
            declared.setdefault(kind, set())
            if form is not IdForm.AUTO:
                declared[kind].add(form)
    forms = {}
    for kind, found in declared.items():
        if len(found) > 1:
            names = ", ".join(sorted(f.value for f in found))
            raise ValueError(f"the routes of object kind {kind!r} declare its ids as {names}")
        forms[kind] = found.pop() if found else IdForm.AUTO
    return forms


def id_source_problems(
    route: RouteSettings, rules: InputRules | None, forms: Mapping[str, IdForm]
) -> list[str]:
    """Why a create route's id to record cannot be found or trusted (``bastion check``)."""
    objects = route.objects
    if objects.records is None:
        return []
    source, where = objects.id_source
    if source == "body" and (rules is None or not rules.declares_body(where)):
        return [f"objects.id_from: the route's body schema declares nothing at {where}"]
    if source == "answer" and rules is not None and not rules.answer_declares(where):
        return [f"objects.id_from: the operation's 2xx answers declare nothing at {where}"]
    if source == "answer" and rules is not None and rules.declares_body(where):
        # The app could name the id the upstream then creates or overwrites.
        return [
            f"objects.id_from: the body schema lets the app send {where}; record it with "
            f'id_from = "body:{where}"'
        ]
    chosen = _created_param(route, PathTemplate.parse(route.path).params) or source == "body"
    if chosen and forms.get(objects.records) is IdForm.AUTO:
        # The id is the app's choice: an undeclared type cannot say which spellings the
        # upstream reads as the same object.
        return [
            f"objects.records: the app chooses {objects.records!r} ids here; declare their "
            "type (integer, string, or string with format: uuid) in the input schema"
        ]
    return []


def _owned_param(route: RouteSettings, params: tuple[str, ...]) -> str | None:
    """The path parameter naming the object the request is about (audit, owned)."""
    return route.objects.id_param or (params[-1] if params else None)


def _created_param(route: RouteSettings, params: tuple[str, ...]) -> str | None:
    """The path parameter naming the object a create makes, when the app chooses it: the
    declared path source, or the last parameter of a PUT create answered with its id."""
    objects = route.objects
    if objects.records is None:
        return None
    source, where = objects.id_source
    if source == "path":
        return where
    upsert = source == "answer" and objects.owned is None and "PUT" in route.methods
    return params[-1] if upsert and params else None


def _declared_forms(route: RouteSettings, rules: InputRules | None) -> list[tuple[str, IdForm]]:
    """(kind, form declared for its ids) for each object kind this route touches."""
    objects = route.objects
    params = PathTemplate.parse(route.path).params

    def path_form(name: str | None) -> IdForm:
        return IdForm.AUTO if rules is None or name is None else rules.param_form("path", name)

    found = []
    if objects.owned is not None:
        found.append((objects.owned, path_form(_owned_param(route, params))))
    if objects.records is not None:
        source, where = objects.id_source
        if source == "body":
            found.append(
                (objects.records, IdForm.AUTO if rules is None else rules.body_form(where))
            )
        else:
            found.append((objects.records, path_form(_created_param(route, params))))
    return found


def _forwarded(route: RouteSettings, upstream: Upstream) -> frozenset[str]:
    names = FORWARDED_REQUEST_HEADERS | set(route.forward_headers)
    if route.idempotency is not None:
        # The upstream may deduplicate too (draft-ietf-httpapi-idempotency-key-header).
        names |= {"idempotency-key"}
    if route.objects.response_owner is not None:
        # A 304 or 412 answer would say "exists, unchanged" about someone else's object
        # before the owner check could see a body.
        names -= CONDITIONAL_HEADERS
    if upstream.credential is not None:
        names -= {upstream.credential.header}
    return frozenset(names)


def _path_ids(
    route: RouteSettings,
    params: tuple[str, ...],
    rules: InputRules | None,
    objects_at: Mapping[str, IdForm],
) -> tuple[tuple[str, IdForm, bool], ...]:
    """Path parameters to canonicalise: (name, form, is an object id).

    ``objects_at`` gives the kind's form for parameters that name an owned or created
    object; parameters bound to claims or used by a look-up are object ids too.
    """
    objects = route.objects
    strict = (set(objects.param_claims) & set(params)) | set(objects_at)
    if objects.lookup is not None:
        strict |= set(PathTemplate.parse(objects.lookup).params)
    found = []
    for name in params:
        form = IdForm.AUTO if rules is None else rules.param_form("path", name)
        form = objects_at.get(name, form)
        # Untyped values of no object rule are passed as they are.
        if name in strict or form in (IdForm.INTEGER, IdForm.UUID):
            found.append((name, form, name in strict))
    return tuple(found)


def _bindings(
    route: RouteSettings, params: tuple[str, ...], rules: InputRules | None
) -> Bindings | None:
    objects = route.objects
    if not objects.param_claims and not objects.body_claims:
        return None

    def form(where: str, name: str) -> IdForm:
        if rules is None:
            return IdForm.AUTO
        return rules.body_form(name) if where == "body" else rules.param_form(where, name)

    claims = objects.param_claims.items()
    return Bindings(
        path=tuple(Binding(p, c, form("path", p)) for p, c in claims if p in params),
        query=tuple(Binding(p, c, form("query", p)) for p, c in claims if p not in params),
        body=tuple(Binding(p, c, form("body", p)) for p, c in objects.body_claims.items()),
        set_body=objects.body_claims_mode == "set",
    )


def _compile(
    route: RouteSettings,
    upstream: Upstream,
    max_body_bytes: int,
    rules: InputRules | None,
    forms: Mapping[str, IdForm],
) -> Route:
    objects = route.objects
    template = PathTemplate.parse(route.path)
    params = template.params
    owned_param = _owned_param(route, params)
    created_param = _created_param(route, params)
    owned_form = IdForm.AUTO if objects.owned is None else forms[objects.owned]
    created_form = IdForm.AUTO if objects.records is None else forms[objects.records]
    objects_at = {}
    if objects.owned is not None and owned_param is not None:
        objects_at[owned_param] = owned_form
    if created_param is not None:
        objects_at[created_param] = created_form
    return Route(
        settings=route,
        upstream=upstream,
        target=PathTemplate.parse(route.upstream_path or route.path),
        lookup=None if objects.lookup is None else PathTemplate.parse(objects.lookup),
        input=rules,
        allow=None if route.response.allow is None else compile_allowlist(route.response.allow),
        internal_scopes=route.upstream_scopes
        if route.upstream_scopes is not None
        else (*route.scopes, *route.any_scopes),
        forwarded=_forwarded(route, upstream),
        max_body=max_body_bytes
        if route.max_body_bytes is None
        else min(max_body_bytes, route.max_body_bytes),
        buffers=bool(objects.response_owner or objects.records or route.response.allow is not None),
        id_param=owned_param,
        checks_ownership=bool(objects.owned or objects.records or objects.lookup),
        limits_before=tuple(limit for limit in route.limits if limit.before_authentication)
        if not route.is_public
        else route.limits,
        limits_after=tuple(limit for limit in route.limits if not limit.before_authentication)
        if not route.is_public
        else (),
        path_ids=_path_ids(route, params, rules, objects_at),
        owned_form=owned_form,
        created_param=created_param,
        created_form=created_form,
        # A DELETE forgets the owned object only when the path ends with it: deleting
        # /folders/1/notes/2 must not forget folder 1.
        forgets=objects.owned is not None
        and "DELETE" in route.methods
        and bool(template.segments)
        and template.segments[-1] == ("param", owned_param),
        bindings=_bindings(route, params, rules),
    )
