"""Stale fallback for ``GET`` routes (``fallback = "stale"``): while the upstream fails or
its breaker is open, answer with the last good answer this process saw for the same
caller and URL, marked stale (RFC 9211 ``Cache-Status``, RFC 9111 ``Age``)."""

from __future__ import annotations

from bastion.errors import CircuitOpen, UpstreamFailure
from bastion.gateway.exchange import Exchange, raw_path
from bastion.gateway.guarding import Kept
from bastion.gateway.routes import Route
from bastion.gateway.steps.base import Step


class StaleFallback(Step):
    name = "stale fallback"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return route.settings.fallback == "stale"

    async def respond(self, ex: Exchange) -> None:
        answer = ex.answer
        if answer is not None and 200 <= answer.status < 300:
            now = self.services.clock.now()
            kept = Kept(answer.status, answer.headers, answer.final(), now)
            self.services.stale.set(_key(ex), kept, now + ex.route.settings.stale_for)

    async def failed(self, ex: Exchange, error: BaseException) -> None:
        if ex.started or not isinstance(error, UpstreamFailure | CircuitOpen):
            return
        now = self.services.clock.now()
        kept = self.services.stale.get(_key(ex))
        if kept is None:
            return
        marks = [
            (b"cache-status", b'bastion; hit; detail="stale"'),
            (b"age", str(int(now - kept.at)).encode()),
        ]
        await ex.send_whole(kept.status, kept.headers + marks + ex.extra, kept.body)


def _key(ex: Exchange) -> tuple[str, ...]:
    # Keyed by the caller too, so a fallback never hands one user's data to another.
    return (
        ex.route.label,
        raw_path(ex.scope).decode("latin-1"),
        ex.scope.get("query_string", b"").decode("latin-1"),
        ex.who,
    )
