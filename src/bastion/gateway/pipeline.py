"""The gateway: every app request under the prefix is matched to a route, then passes that
route's chain of steps (``bastion.gateway.steps``, in the order ``steps.ORDER`` gives).

Before any step, on every route: the raw path is matched segment by segment (an
undeclared path or method is 404), and access tokens in the URL are refused (RFC 6750
§5.3). CORS preflights are answered from the routes' declarations.

Plain ASGI, no framework routing: this is the hot path. Every refusal and every allowed
write is audited with the route, the subject and the object id, never the body.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send

from bastion.audit import AuditEvent, AuditPipeline, Outcome
from bastion.errors import BadPath, BodyTooLarge, Hidden, InvalidInput, ProblemError, Refusal
from bastion.gateway import cors
from bastion.gateway.exchange import (
    Exchange,
    Services,
    audit_exchange,
    raw_path,
    request_headers,
    send_whole,
)
from bastion.gateway.router import Router
from bastion.gateway.routes import Route
from bastion.gateway.steps import ORDER, Step
from bastion.gateway.templates import split_path
from bastion.gateway.upstream import Upstream
from bastion.gateway.validation import parse_query
from bastion.web.context import correlation_id
from bastion.web.middleware import problem_for
from bastion.web.problems import PROBLEM_JSON

log = logging.getLogger("bastion.gateway")

# Query parameters that carry credentials: refused, so tokens never sit in URLs, access
# logs and browser history (RFC 6750 §2.3 and §5.3: "don't pass bearer tokens in URLs").
TOKEN_PARAMETERS = ("access_token",)
# Recent (method, path) matches kept, and the longest path kept (``Gateway._matched``).
MATCH_CACHE_SIZE = 4096
MATCH_CACHE_PATH_BYTES = 512


@dataclass(frozen=True)
class Chain:
    """A route's steps, by phase, in order (``steps.base`` describes the phases)."""

    request: tuple[Step, ...]
    answer: tuple[Step, ...]
    respond: tuple[Step, ...]
    done: tuple[Step, ...]
    failed: tuple[Step, ...]

    @classmethod
    def build(cls, route: Route, services: Services) -> Chain:
        steps = [kind(services) for kind in ORDER if kind.wanted(route)]

        def taking(phase: str) -> tuple[Step, ...]:
            return tuple(step for step in steps if phase in step.phases())

        return cls(
            taking("request"),
            taking("answer"),
            taking("respond"),
            taking("done"),
            tuple(reversed(taking("failed"))),
        )

    async def run(self, ex: Exchange) -> None:
        try:
            for step in self.request:
                await step.request(ex)
                if ex.answered:
                    break
            answer = ex.answer
            if answer is not None and not ex.answered:
                if 200 <= answer.status < 300:
                    for step in self.answer:
                        await step.answer(ex)
                for step in self.respond:
                    await step.respond(ex)
                await ex.send_whole(answer.status, answer.headers + ex.extra, answer.final())
        except BaseException as exc:
            answered = ex.answered
            for step in self.failed:
                await step.failed(ex, exc)
            # Only a failure handler's own answer (a stale copy) replaces the error.
            if answered or not ex.answered or not isinstance(exc, Exception):
                raise
            return
        if ex.status is not None:
            for step in self.done:
                await step.done(ex)


def explain(route: Route) -> list[tuple[str, tuple[str, ...]]]:
    """The steps ``route`` runs, in order, with the phases each takes part in."""
    return [(kind.name, kind.phases()) for kind in ORDER if kind.wanted(route)]


class Gateway:
    def __init__(
        self,
        *,
        prefix: str,
        router: Router[Route],
        upstreams: Sequence[Upstream],
        services: Services,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self.prefix = prefix.encode()
        self._under_prefix = self.prefix + b"/"
        self.router = router
        self.upstreams = list(upstreams)
        self.services = services
        self._closers = list(closers)
        self._chains = {route.label: Chain.build(route, services) for route in router.values}
        # What recent paths matched: an app asks for the same paths again and again, and
        # matching (decoding, the checks on each segment, the trie walk) is pure. Bounded
        # in entries and in path length; a refused path is never kept, and a path seen
        # for the first time (or an attacker cycling paths) is matched in full.
        self._matched = functools.lru_cache(maxsize=MATCH_CACHE_SIZE)(self._match)

    @property
    def audit(self) -> AuditPipeline:
        return self.services.audit

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

    def handles(self, raw: bytes) -> bool:
        return raw.startswith(self._under_prefix) or raw == self.prefix

    def _match(self, method: str, raw: bytes) -> tuple[Route, tuple[tuple[str, str], ...]] | None:
        """The route and parameters of a raw path under the prefix; ``BadPath`` for an
        unsafe one."""
        match = self.router.match(method, split_path(raw[len(self.prefix) :] or b"/"))
        return None if match is None else (match.route, tuple(match.params.items()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        headers = request_headers(scope)
        raw = raw_path(scope)
        if method == "OPTIONS":
            try:
                segments = split_path(raw[len(self.prefix) :] or b"/")
            except BadPath:
                segments = None
            if segments is not None:
                await self._preflight(scope, segments, headers, send)
                return
        try:
            match = (
                self._matched(method, raw)
                if len(raw) <= MATCH_CACHE_PATH_BYTES
                else self._match(method, raw)
            )
        except BadPath:
            match = None
        if match is None:
            await self._unmatched(scope, send, method, Hidden("no route"))
            return
        route, pairs = match
        params = dict(pairs)  # the exchange's own: steps may replace values
        ex = Exchange(scope, receive, send, method, headers, route, params)
        ex.object_id = route.object_id(params)
        # CORS fields depend on this request's Origin: every answer gets them once, and
        # they are never stored with an answer (replays and stale copies add their own).
        if route.settings.cors is not None:
            ex.extra += cors.response_headers(route.settings.cors, headers.get("origin"))
        try:
            query_string = ex.query_string = scope.get("query_string", b"")
            if query_string:  # an empty one leaves the exchange's empty query
                ex.query = parse_query(query_string)
                if any(name in ex.query for name in TOKEN_PARAMETERS):
                    raise InvalidInput("Access tokens are not accepted in the URL.")
            await self._chains[route.label].run(ex)
        except ProblemError as exc:
            if _is_refusal(exc):
                reason = exc.reason if isinstance(exc, Refusal) else type(exc).__name__
                audit_exchange(
                    self.audit,
                    ex,
                    "gateway.request.refused",
                    exc.status,
                    Outcome.DENIED,
                    reason=reason,
                )
            if ex.started:
                raise
            await _problem(scope, send, exc, ex.extra)

    async def _unmatched(self, scope: Scope, send: Send, method: str, exc: Hidden) -> None:
        self.audit.emit(
            AuditEvent(
                "gateway.request.refused",
                Outcome.DENIED,
                actor="anonymous",
                correlation_id=correlation_id(scope),
                details={"method": method, "status": exc.status, "reason": exc.reason},
            )
        )
        await _problem(scope, send, exc, [])

    async def _preflight(
        self, scope: Scope, segments: list[str], headers: dict[str, str], send: Send
    ) -> None:
        routes = [r.settings for r in self.router.allowed_methods(segments)]
        allowed = cors.preflight(
            routes,
            headers.get("origin"),
            headers.get("access-control-request-method"),
            headers.get("access-control-request-headers"),
        )
        if allowed is None:
            await self._unmatched(scope, send, "OPTIONS", Hidden("CORS preflight not declared"))
            return
        await send_whole(send, 204, allowed, b"")


def _is_refusal(exc: ProblemError) -> bool:
    return isinstance(exc, Refusal | InvalidInput | BodyTooLarge) or exc.status < 500


async def _problem(
    scope: Scope, send: Send, exc: ProblemError, extra: list[tuple[bytes, bytes]]
) -> None:
    status, body, fields = problem_for(exc, correlation_id(scope))
    headers = [(b"content-type", PROBLEM_JSON.encode())]
    headers += [(k.encode(), v.encode()) for k, v in fields.items()]
    await send_whole(send, status, headers + extra, body)
