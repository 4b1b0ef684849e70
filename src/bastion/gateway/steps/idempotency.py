"""Idempotency keys on writes (``bastion.guards.idempotency``, draft-ietf-httpapi-
idempotency-key-header): a retried write is answered from the record of the first, a
key still running is 409, a key reused with another body 422; a write whose outcome is
unknown is never run again.

The key is claimed last, right before the call: a request refused earlier must not
leave its key "running" for the app's retry to trip over.
"""

from __future__ import annotations

from bastion.errors import CircuitOpen, InvalidInput
from bastion.gateway.exchange import Exchange, raw_path
from bastion.gateway.routes import Route
from bastion.gateway.steps.base import Step
from bastion.guards.idempotency import HEADER, Stored, fingerprint, parse_key

# Beyond the longest a call can take, a "running" idempotency record means a crash.
LEASE_MARGIN = 5.0


class Idempotency(Step):
    name = "idempotency"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return route.settings.idempotency is not None

    async def request(self, ex: Exchange) -> None:
        settings = ex.route.settings.idempotency
        assert settings is not None
        key = parse_key(ex.headers.get(HEADER), accept_unquoted=settings.accept_unquoted)
        if key is None:
            if settings.required:
                raise InvalidInput("This request needs an Idempotency-Key header.")
            return
        who = ex.who
        # The key is scoped to the exact resource: the same key and body sent to
        # /accounts/A/... and /accounts/B/... are two requests, not a replay.
        target = f"{ex.route.label}|{raw_path(ex.scope).decode('latin-1')}?" + ex.scope.get(
            "query_string", b""
        ).decode("latin-1")
        upstream = ex.route.upstream.settings
        found = await self.services.guards.idempotency.begin(
            key,
            route=target,
            principal=who,
            fingerprint=fingerprint(ex.method, target, who, ex.forwarded_body() or b""),
            ttl=settings.ttl,
            lease=upstream.total_timeout * (upstream.retries.attempts + 1) + LEASE_MARGIN,
        )
        if isinstance(found, Stored):
            replayed = [*found.headers, (b"idempotent-replayed", b"true")]
            await ex.send_whole(found.status, replayed + ex.extra, found.body)
            return
        ex.claim = found

    async def respond(self, ex: Exchange) -> None:
        settings = ex.route.settings.idempotency
        if ex.claim is None or ex.answer is None or settings is None:
            return
        ex.settled = True
        answer = ex.answer
        stored = Stored(answer.status, answer.headers, answer.final())
        await self.services.guards.idempotency.complete(ex.claim, stored, settings.ttl)

    async def failed(self, ex: Exchange, error: BaseException) -> None:
        settings = ex.route.settings.idempotency
        if ex.claim is None or ex.settled or settings is None:
            return
        store = self.services.guards.idempotency
        unprocessed = not getattr(error, "maybe_processed", True)
        if not ex.called or isinstance(error, CircuitOpen) or unprocessed:
            # The upstream provably did nothing: the key may be tried again.
            await store.release(ex.claim)
        else:
            # The upstream may have acted: the key is never run again, rather than left
            # "running" for its whole lifetime.
            await store.unknown(ex.claim, settings.ttl)
