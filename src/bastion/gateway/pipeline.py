"""The gateway pipeline: every app request under the prefix passes these steps, in order.

1. route       the raw path, segment by segment; undeclared path or method: 404
2. token       no access token in the URL (RFC 6750 §5.3): 400
3. authenticate  bearer token from Bastion or a declared issuer: 401 (public routes skip)
4. authorize   scopes, clients, roles, claims (403); acr and auth age (401, RFC 9470)
5. parameters  path/query parameters bound to claims (BOLA): 404
6. validate    path and query schemas, content type, size, depth, body schema: 400/413/415
7. ownership   the ownership registry, or a look-up call to the upstream (BOLA): 404
8. credential  the app's token is replaced by an internal token or a static credential
9. proxy       the upstream call with the upstream's timeouts: 502/504 on failure
10. answer     5xx withheld, owner field checked (404), ids recorded, fields allowlisted,
               revealing headers dropped, CORS headers added when declared

Plain ASGI, no framework routing: this is the hot path. Every refusal and every allowed
write is audited with the route, the subject and the object id, never the body.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from bastion.audit import AuditEvent, AuditPipeline, Outcome
from bastion.clock import Clock
from bastion.errors import (
    BodyTooLarge,
    InvalidInput,
    ProblemError,
    RequestTimeout,
    UpstreamFailure,
)
from bastion.gateway import cors
from bastion.gateway.authentication import (
    Authenticator,
    Caller,
    bearer_token,
    claim_text,
    principal,
)
from bastion.gateway.bindings import canonicalise_at
from bastion.gateway.credentials import InternalTokens, narrowed_scopes
from bastion.gateway.guarding import Page, StaleCache, page_answer, page_request
from bastion.gateway.identifiers import canonical_json, registry_key
from bastion.gateway.objects import Ownership
from bastion.gateway.policy import Hidden, Refusal, authorize
from bastion.gateway.router import Router
from bastion.gateway.routes import BODY_METHODS, Route
from bastion.gateway.settings import RouteSettings
from bastion.gateway.shaping import pointer_value, response_headers, shape
from bastion.gateway.templates import BadPath, split_path
from bastion.gateway.upstream import UNAVAILABLE, Upstream, read_limited
from bastion.gateway.validation import parse_query
from bastion.guards.idempotency import HEADER as IDEMPOTENCY_HEADER
from bastion.guards.idempotency import Claim, Stored, fingerprint, parse_key
from bastion.guards.limiter import Facts
from bastion.guards.resilience import CircuitOpen
from bastion.guards.service import Guards
from bastion.guards.settings import LimitSettings
from bastion.web.context import correlation_id
from bastion.web.middleware import problem_for
from bastion.web.problems import PROBLEM_JSON

log = logging.getLogger("bastion.gateway")

WRITE_METHODS = BODY_METHODS
# Beyond the longest a call can take, a "running" idempotency record means a crash.
LEASE_MARGIN = 5.0
# Answers up to this size with a Content-Length are read whole, not streamed.
WHOLE_BODY_BYTES = 65_536
# Query parameters that carry credentials: refused, so tokens never sit in URLs, access
# logs and browser history (RFC 6750 §2.3 and §5.3: "don't pass bearer tokens in URLs").
TOKEN_PARAMETERS = ("access_token",)


@dataclass
class Exchange:
    """One request as it moves through the pipeline."""

    method: str
    route: Route | None = None
    caller: Caller | None = None
    object_id: str | None = None
    # The id a create makes, when the app chose it (path or body), and whether this
    # request reserved it in the ownership registry.
    created_id: str | None = None
    reserved: bool = False
    origin: str | None = None
    # Once the status line is sent, a failure can only cut the connection.
    started: bool = False
    # Headers every answer to this request carries (RateLimit fields, Link).
    extra: list[tuple[bytes, bytes]] = field(default_factory=list)
    # The idempotency key's record holds the final answer.
    settled: bool = False


class Gateway:
    def __init__(
        self,
        *,
        prefix: str,
        router: Router[Route],
        upstreams: Sequence[Upstream],
        authenticator: Authenticator,
        internal_tokens: InternalTokens,
        ownership: Ownership,
        audit: AuditPipeline,
        clock: Clock,
        guards: Guards,
        body_timeout: float,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self.prefix = prefix.encode()
        self.guards = guards
        self.body_timeout = body_timeout
        self.stale = StaleCache()
        self._closers = list(closers)
        self.router = router
        self.upstreams = list(upstreams)
        self.authenticator = authenticator
        self.internal_tokens = internal_tokens
        self.ownership = ownership
        self.audit = audit
        self.clock = clock

    async def start(self) -> None:
        for upstream in self.upstreams:
            await upstream.start()

    async def close(self) -> None:
        for upstream in self.upstreams:
            await upstream.close()
        for close in self._closers:
            await close()

    def reload_credentials(self) -> None:
        for upstream in self.upstreams:
            if upstream.credential is not None:
                upstream.credential.reload()

    def handles(self, raw_path: bytes) -> bool:
        return raw_path == self.prefix or raw_path.startswith(self.prefix + b"/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = Exchange(method=scope["method"])
        headers = _headers(scope)
        exchange.origin = headers.get("origin")
        try:
            segments = split_path(_raw_path(scope)[len(self.prefix) :] or b"/")
        except BadPath:
            segments = None
        try:
            if exchange.method == "OPTIONS" and segments is not None:
                await self._preflight(segments, headers, send)
                return
            match = None if segments is None else self.router.match(exchange.method, segments)
            if match is None:
                raise Hidden("no route")
            exchange.route = match.route
            exchange.object_id = match.route.object_id(match.params)
            # CORS fields depend on this request's Origin: every answer gets them once, and
            # they are never stored with an answer (replays and stale copies add their own).
            exchange.extra += cors.response_headers(match.route.settings.cors, exchange.origin)
            await self._handle(scope, receive, send, exchange, match.params, headers)
        except ProblemError as exc:
            if isinstance(exc, Refusal | InvalidInput | BodyTooLarge) or exc.status < 500:
                self._refused(scope, exchange, exc)
            if exchange.started:
                raise
            await self._problem(scope, send, exchange, exc)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        exchange: Exchange,
        params: dict[str, str],
        headers: dict[str, str],
    ) -> None:
        route = exchange.route
        assert route is not None
        settings = route.settings
        query_string: bytes = scope.get("query_string", b"")
        query = parse_query(query_string)
        if any(name in query for name in TOKEN_PARAMETERS):
            raise InvalidInput("Access tokens are not accepted in the URL.")
        if route.limits_before:
            await self._limit(scope, exchange, route.limits_before)
        caller = None
        if not settings.is_public:
            token = bearer_token(headers.get("authorization"))
            caller = await self.authenticator.authenticate(token, settings.auth or ())
            exchange.caller = caller
            authorize(settings, caller, self.clock.now())
        if route.path_ids:
            # One spelling per id before any comparison, look-up or upstream path.
            params = route.canonical_params(params)
            exchange.object_id = route.object_id(params)
            exchange.created_id = route.created_id(params)
        if caller is not None:
            if route.bindings is not None:
                route.bindings.check_params(caller, params, query)
            if route.limits_after:
                await self._limit(scope, exchange, route.limits_after)
        if route.input is not None:
            route.input.check_params(params, query)
        page = None
        if settings.pagination is not None:
            page = page_request(
                settings.pagination,
                query,
                self.guards.cursors,
                scope=_page_scope(route, caller),
                now=self.clock.now(),
            )
            query_string = page.upstream_query
        body = None
        if exchange.method in BODY_METHODS:
            body = await _read_body(
                receive, route.max_body, headers.get("content-length"), self.body_timeout
            )
            if route.input is not None:
                document = route.input.check_body(headers.get("content-type"), body)
                if document is not None:
                    if route.needs_document and caller is not None:
                        _bind_body(route, exchange, caller, document)
                    # Forward what was validated: duplicate keys or numbers the parser
                    # read one way must not reach the upstream to be read another way,
                    # as JSON in UTF-8 whatever charset or parameters the app named.
                    body = orjson.dumps(document)
                    headers["content-type"] = _media_type(headers.get("content-type"))
        outgoing = await self._outgoing_headers(scope, route, caller, headers)
        if caller is not None and route.checks_ownership:
            await self._check_ownership(route, exchange, caller, params, outgoing)
        # The key is claimed last, right before the call: a request refused earlier
        # must not leave its key "running" for the app's retry to trip over.
        claim = None
        if settings.idempotency is not None:
            try:
                found = await self._idempotency(scope, exchange, headers, body or b"")
            except ProblemError:
                await self._release(route, exchange)
                raise
            if isinstance(found, Stored):
                exchange.started = True
                replayed = [*found.headers, (b"idempotent-replayed", b"true")]
                await _send_whole(send, found.status, replayed + exchange.extra, found.body)
                return
            claim = found
        path = route.target.render(params)
        try:
            status = await self._proxy(
                scope, send, exchange, (path, query_string, outgoing, body), page, claim
            )
        except (UpstreamFailure, CircuitOpen) as exc:
            if claim is not None and not exchange.settled:
                await self._settle(claim, exc, settings)
            if isinstance(exc, CircuitOpen) or not getattr(exc, "maybe_processed", True):
                await self._release(route, exchange)
            if settings.fallback == "stale" and await self._stale(scope, send, exchange):
                return
            raise
        except BaseException:
            # Anything else after the claim (an owner check refusing the answer, a client
            # gone, a store failing): the upstream may have acted, so the key is never
            # run again rather than left "running" for its whole lifetime.
            if claim is not None and not exchange.settled:
                assert settings.idempotency is not None
                await self.guards.idempotency.unknown(claim, settings.idempotency.ttl)
            raise
        if 400 <= status < 500:
            await self._release(route, exchange)  # the upstream refused: nothing was made
        if route.forgets and exchange.method == "DELETE" and 200 <= status < 300:
            await self._forget(route, exchange)
        if exchange.method in WRITE_METHODS and status < 400:
            self._write(scope, exchange, status)

    async def _proxy(
        self,
        scope: Scope,
        send: Send,
        exchange: Exchange,
        call: tuple[str, bytes, list[tuple[str, str]], bytes | None],
        page: Page | None,
        claim: Claim | None,
    ) -> int:
        """Call the upstream and answer; returns the status sent."""
        route = exchange.route
        assert route is not None
        settings = route.settings
        path, query_string, outgoing, body = call
        async with route.upstream.request(
            exchange.method, path, query_string, outgoing, body, keyed=claim is not None
        ) as response:
            status = response.status
            if status >= 500 or status == 401:
                # 401 from an upstream means our credential failed, not the app's:
                # passing it on would send the app to sign in again for nothing.
                log.warning("upstream %s answered %d", route.upstream.name, status)
                if status == 401 and route.upstream.credential is not None:
                    route.upstream.credential.rejected(_sent(outgoing, route.upstream))
                raise UpstreamFailure(UNAVAILABLE)
            answer_headers = response_headers(
                response.raw_headers, reshaped=route.allow is not None or page is not None
            )
            success = 200 <= status < 300
            whole = claim is not None or (success and route.buffers_answer)
            if not whole:
                exchange.started = True
                await _stream(send, response, answer_headers + exchange.extra, route)
                return status
            payload = await read_limited(response, route.upstream.settings.max_response_bytes)
        if success and (route.buffers or page is not None):
            payload = await self._finish(scope, route, exchange, payload, page)
        if claim is not None:
            exchange.settled = True
            await self.guards.idempotency.complete(
                claim,
                Stored(status, answer_headers, payload),
                settings.idempotency.ttl,  # type: ignore[union-attr]
            )
        if success and settings.fallback == "stale":
            self.stale.keep(
                _stale_key(scope, exchange), (status, answer_headers, payload), self.clock.now()
            )
        exchange.started = True
        await _send_whole(send, status, answer_headers + exchange.extra, payload)
        return status

    async def _limit(
        self, scope: Scope, exchange: Exchange, limits: tuple[LimitSettings, ...]
    ) -> None:
        route = exchange.route
        assert route is not None
        caller = exchange.caller
        client = scope.get("client")
        facts = Facts(
            ip=client[0] if client else None,
            user=None if caller is None else principal(caller, caller.subject),
            client=None if caller is None else caller.client_id,
            route=route.label,
            claims=None if caller is None else caller.claims,
        )
        verdict = await self.guards.limiter.check(f"route:{route.label}", limits, facts)
        exchange.extra += [(k.encode(), v.encode()) for k, v in verdict.headers.items()]

    async def _idempotency(
        self, scope: Scope, exchange: Exchange, headers: dict[str, str], body: bytes
    ) -> Claim | Stored | None:
        route = exchange.route
        assert route is not None
        assert route.settings.idempotency is not None
        key = parse_key(
            headers.get(IDEMPOTENCY_HEADER),
            accept_unquoted=route.settings.idempotency.accept_unquoted,
        )
        if key is None:
            if route.settings.idempotency.required:
                raise InvalidInput("This request needs an Idempotency-Key header.")
            return None
        caller = exchange.caller
        who = "anonymous" if caller is None else principal(caller, caller.subject)
        # The key is scoped to the exact resource: the same key and body sent to
        # /accounts/A/... and /accounts/B/... are two requests, not a replay.
        target = f"{route.label}|{_raw_path(scope).decode('latin-1')}?" + scope.get(
            "query_string", b""
        ).decode("latin-1")
        upstream = route.upstream.settings
        return await self.guards.idempotency.begin(
            key,
            route=target,
            principal=who,
            fingerprint=fingerprint(exchange.method, target, who, body),
            ttl=route.settings.idempotency.ttl,
            lease=upstream.total_timeout * (upstream.retries.attempts + 1) + LEASE_MARGIN,
        )

    async def _settle(self, claim: Claim, exc: ProblemError, settings: RouteSettings) -> None:
        """After a failed call: free the key only if the upstream provably did nothing."""
        assert settings.idempotency is not None
        if isinstance(exc, CircuitOpen) or not getattr(exc, "maybe_processed", True):
            await self.guards.idempotency.release(claim)
        else:
            await self.guards.idempotency.unknown(claim, settings.idempotency.ttl)

    async def _stale(self, scope: Scope, send: Send, exchange: Exchange) -> bool:
        route = exchange.route
        assert route is not None
        now = self.clock.now()
        kept = self.stale.fresh_enough(_stale_key(scope, exchange), route.settings.stale_for, now)
        if kept is None:
            return False
        # RFC 9211 §2: say that this answer comes from the gateway's store, and how old.
        marks = [
            (b"cache-status", b'bastion; hit; detail="stale"'),
            (b"age", str(int(now - kept.at)).encode()),
        ]
        exchange.started = True
        await _send_whole(send, kept.status, kept.headers + marks + exchange.extra, kept.body)
        return True

    async def _outgoing_headers(
        self, scope: Scope, route: Route, caller: Caller | None, headers: dict[str, str]
    ) -> list[tuple[str, str]]:
        outgoing = [(name, value) for name, value in headers.items() if name in route.forwarded]
        client = scope.get("client")
        outgoing += [
            ("x-request-id", correlation_id(scope) or ""),
            ("x-forwarded-for", client[0] if client else ""),
            ("x-forwarded-proto", scope.get("scheme", "http")),
        ]
        upstream = route.upstream
        credential = upstream.settings.credential
        if upstream.credential is not None:
            outgoing.append((upstream.credential.header, await upstream.credential.current()))
        elif credential.type == "token_exchange" and caller is not None:
            scopes = narrowed_scopes(route.internal_scopes, caller)
            token = await self.internal_tokens.token_for(caller, upstream.settings, scopes)
            outgoing.append(("authorization", f"Bearer {token}"))
        return outgoing

    async def _check_ownership(
        self,
        route: Route,
        exchange: Exchange,
        caller: Caller,
        params: dict[str, str],
        outgoing: list[tuple[str, str]],
    ) -> None:
        """The registry and the look-up call, before anything is forwarded."""
        objects = route.settings.objects
        claimed = claim_text(caller, objects.owner_claim)
        if objects.owned is not None:
            object_id = exchange.object_id
            if claimed is None or object_id is None:
                raise Hidden("no owner or object id")
            key = registry_key(object_id, route.owned_form)
            await self.ownership.require_owner(objects.owned, key, principal(caller, claimed))
        if objects.records is not None:
            if claimed is None:
                # Nobody could be recorded as the owner of what this create makes.
                raise Hidden("no owner claim to record")
            if exchange.created_id is not None:
                # The app chose the id (PUT /notes/{id}, or an id in the body): it is
                # recorded for the caller before the write, so two creates racing for
                # one id cannot both reach the upstream, and an id someone else owns is
                # never overwritten.
                key = registry_key(exchange.created_id, route.created_form)
                owner, recorded = await self.ownership.record(
                    objects.records, key, principal(caller, claimed)
                )
                if owner != principal(caller, claimed):
                    raise Hidden("object owned by another subject")
                exchange.reserved = recorded
        if route.lookup is not None:
            async with route.upstream.request(
                "GET", route.lookup.render(params), b"", outgoing, None
            ) as response:
                if response.status == 404:
                    raise Hidden("look-up: no such object")
                if response.status == 401 and route.upstream.credential is not None:
                    route.upstream.credential.rejected(_sent(outgoing, route.upstream))
                if response.status != 200:
                    log.warning(
                        "ownership look-up on %s answered %d", route.upstream.name, response.status
                    )
                    raise UpstreamFailure(UNAVAILABLE)
                raw = await read_limited(response, route.upstream.settings.max_response_bytes)
            if claimed is None or _owner_text(_json_pointer(raw, objects.lookup_owner)) != claimed:
                raise Hidden("look-up: owned by another subject")

    async def _finish(
        self, scope: Scope, route: Route, exchange: Exchange, raw: bytes, page: Page | None
    ) -> bytes:
        """Id recording, owner check, paging and shaping of a successful answer."""
        objects = route.settings.objects
        source, where = objects.id_source
        from_answer = objects.records is not None and source == "answer"
        reads = from_answer or objects.response_owner or page or route.allow is not None
        document = _json_answer(route, raw) if raw and reads else None
        caller = exchange.caller
        claimed = None if caller is None else claim_text(caller, objects.owner_claim)
        if from_answer and caller is not None and claimed is not None:
            created = canonical_json(pointer_value(document, where), route.created_form)
            await self._record(scope, route, exchange, created, principal(caller, claimed))
        elif exchange.created_id is not None:
            exchange.object_id = exchange.created_id  # recorded before the call
        if document is None:
            return raw  # 204, an empty 200, or nothing to check or shape
        if objects.response_owner is not None:
            found = _owner_text(pointer_value(document, objects.response_owner))
            if claimed is None or found != claimed:
                raise Hidden("response owned by another subject")
        if page is not None:
            pagination = route.settings.pagination
            assert pagination is not None
            document, link = page_answer(
                document,
                pagination,
                page,
                self.guards.cursors,
                scope=_page_scope(route, caller),
                now=self.clock.now(),
                path=_raw_path(scope).decode("latin-1"),
            )
            if link is not None:
                exchange.extra.append((b"link", link.encode()))
        if route.allow is not None:
            return orjson.dumps(shape(document, route.allow))
        return orjson.dumps(document) if page is not None else raw

    async def _record(
        self, scope: Scope, route: Route, exchange: Exchange, created: str | None, owner: str
    ) -> None:
        """Record the id an answer names for the caller (withheld on a conflict)."""
        objects = route.settings.objects
        assert objects.records is not None
        if created is None:
            # The object exists upstream with no owner, so nobody can reach it through
            # the gateway: say so to the app and to the audit trail rather than succeed.
            self._audit(scope, exchange, "gateway.ownership.unrecorded", 502, Outcome.FAILURE)
            log.warning("route %s: no object id at %s to record", route.label, objects.id_source)
            raise UpstreamFailure(UNAVAILABLE)
        exchange.object_id = created
        try:
            recorded, _ = await self.ownership.record(
                objects.records, registry_key(created, route.created_form), owner
            )
        except ValueError:
            recorded = None
        if recorded != owner:
            # The upstream handed out an id the registry gives to someone else (or one too
            # long to record): withhold the answer rather than let two users share it.
            log.warning("route %s: object id conflict in the ownership registry", route.label)
            raise UpstreamFailure(UNAVAILABLE)

    async def _release(self, route: Route, exchange: Exchange) -> None:
        """Free an id reserved for this create when the upstream provably made nothing."""
        kind = route.settings.objects.records
        if exchange.reserved and kind is not None and exchange.created_id is not None:
            exchange.reserved = False
            await self.ownership.forget(kind, registry_key(exchange.created_id, route.created_form))

    async def _forget(self, route: Route, exchange: Exchange) -> None:
        """A deleted object leaves the registry, so a reused id cannot reach its old owner."""
        kind = route.settings.objects.owned
        if kind is not None and exchange.object_id is not None:
            await self.ownership.forget(kind, registry_key(exchange.object_id, route.owned_form))

    async def _preflight(self, segments: list[str], headers: dict[str, str], send: Send) -> None:
        routes = [r.settings for r in self.router.allowed_methods(segments)]
        allowed = cors.preflight(
            routes,
            headers.get("origin"),
            headers.get("access-control-request-method"),
            headers.get("access-control-request-headers"),
        )
        if allowed is None:
            raise Hidden("CORS preflight not declared")
        await _send_whole(send, 204, allowed, b"")

    async def _problem(
        self, scope: Scope, send: Send, exchange: Exchange, exc: ProblemError
    ) -> None:
        status, body, extra = problem_for(exc, correlation_id(scope))
        headers = [(b"content-type", PROBLEM_JSON.encode())]
        headers += [(k.encode(), v.encode()) for k, v in extra.items()]
        await _send_whole(send, status, headers + exchange.extra, body)

    def _refused(self, scope: Scope, exchange: Exchange, exc: ProblemError) -> None:
        reason = exc.reason if isinstance(exc, Refusal) else type(exc).__name__
        self._audit(
            scope, exchange, "gateway.request.refused", exc.status, Outcome.DENIED, reason=reason
        )

    def _write(self, scope: Scope, exchange: Exchange, status: int) -> None:
        self._audit(scope, exchange, "gateway.write", status, Outcome.SUCCESS)

    def _audit(
        self,
        scope: Scope,
        exchange: Exchange,
        action: str,
        status: int,
        outcome: Outcome,
        **details: str,
    ) -> None:
        """Who (subject and app), which route, which object; never the body."""
        caller = exchange.caller
        self.audit.emit(
            AuditEvent(
                action,
                outcome,
                actor=_actor(caller),
                target=exchange.object_id,
                policy=None if exchange.route is None else exchange.route.label,
                correlation_id=correlation_id(scope),
                details={
                    "method": exchange.method,
                    "status": status,
                    "client": None if caller is None else caller.client_id,
                    **details,
                },
            )
        )


def _actor(caller: Caller | None) -> str:
    if caller is None:
        return "anonymous"
    return (
        f"user:{caller.subject}"
        if caller.issuer == "bastion"
        else (f"{caller.issuer}:{caller.subject}")
    )


def _page_scope(route: Route, caller: Caller | None) -> str:
    """Cursors are bound to the route and the caller: no replay by someone else."""
    who = "anonymous" if caller is None else principal(caller, caller.subject)
    return f"{route.label}|{who}"


def _stale_key(scope: Scope, exchange: Exchange) -> tuple[str, ...]:
    caller = exchange.caller
    who = "anonymous" if caller is None else principal(caller, caller.subject)
    label = "" if exchange.route is None else exchange.route.label
    return (
        label,
        _raw_path(scope).decode("latin-1"),
        scope.get("query_string", b"").decode("latin-1"),
        who,
    )


def _raw_path(scope: Scope) -> bytes:
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        return str(scope["path"]).encode()
    return raw.split(b"?", 1)[0]


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name; the first of repeated fields wins."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in found:
            found[key] = value.decode("latin-1")
    return found


async def _read_body(receive: Receive, limit: int, declared: str | None, per_read: float) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"The request body is over {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            # A client that stops sending mid-body (slowloris) is cut off, per read.
            async with asyncio.timeout(per_read):
                message: Message = await receive()
        except TimeoutError:
            raise RequestTimeout("The request body arrived too slowly.") from None
        if message["type"] == "http.disconnect":
            raise InvalidInput("The request was cancelled.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"The request body is over {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _json_answer(route: Route, raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        log.warning("upstream %s answered non-JSON on a checked route", route.upstream.name)
        raise UpstreamFailure(UNAVAILABLE) from None


def _bind_body(route: Route, exchange: Exchange, caller: Caller, document: Any) -> None:
    """Check (or set) the body's bound fields, and find the id a create records."""
    if route.bindings is not None and route.bindings.body:
        route.bindings.bind_body(caller, document)
    source, where = route.settings.objects.id_source
    if route.settings.objects.records is not None and source == "body":
        created = canonicalise_at(document, where, route.created_form)
        if created is None:
            raise InvalidInput(f"The body needs the new object's id at {where}.")
        exchange.created_id = created


def _media_type(content_type: str | None) -> str:
    """The media type alone: validation already checked it is one of the route's."""
    return (content_type or "").split(";")[0].strip().lower()


def _sent(outgoing: list[tuple[str, str]], upstream: Upstream) -> str:
    """The upstream's own credential as it was sent with this request."""
    assert upstream.credential is not None
    header = upstream.credential.header
    return next((value for name, value in outgoing if name == header), "")


def _json_pointer(raw: bytes, pointer: str) -> Any:
    try:
        return pointer_value(orjson.loads(raw), pointer)
    except orjson.JSONDecodeError:
        return None


def _owner_text(value: object) -> str | None:
    """An owner or id as text: a non-empty string or an integer, nothing else (no null,
    no boolean, no structure that would stringify into a match)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text or None


async def _send_whole(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _stream(
    send: Send, response: Any, headers: list[tuple[bytes, bytes]], route: Route
) -> None:
    limit = route.upstream.settings.max_response_bytes
    length = response.content_length
    if length is not None and length > limit:
        raise UpstreamFailure(UNAVAILABLE)
    if length is not None and length <= WHOLE_BODY_BYTES:
        # A small answer of known size goes out in one message with its length.
        await _send_whole(send, response.status, headers, await response.read())
        return
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    size = 0
    async for chunk in response.content.iter_chunked(65_536):
        size += len(chunk)
        if size > limit:
            # The status line is gone; cut the connection rather than deliver a partial
            # answer as if it were whole.
            raise RuntimeError("upstream answer over the size limit")
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
