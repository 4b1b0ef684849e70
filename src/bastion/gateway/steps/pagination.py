"""Cursor pagination in front of list endpoints (``bastion.gateway.guarding``): the app
sends ``limit`` and an opaque signed cursor, the upstream sees its own offset or token;
the answer's next page becomes a ``Link`` (RFC 8288)."""

from __future__ import annotations

from bastion.gateway.exchange import Exchange, raw_path
from bastion.gateway.guarding import page_answer, page_request
from bastion.gateway.routes import Route
from bastion.gateway.steps.base import Step


class Pagination(Step):
    name = "pagination"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return route.settings.pagination is not None

    async def request(self, ex: Exchange) -> None:
        settings = ex.route.settings.pagination
        assert settings is not None
        ex.page = page_request(
            settings,
            ex.query,
            self.services.guards.cursors,
            scope=_page_scope(ex),
            now=self.services.clock.now(),
        )
        ex.query_string = ex.page.upstream_query

    async def answer(self, ex: Exchange) -> None:
        settings = ex.route.settings.pagination
        assert settings is not None
        assert ex.page is not None
        assert ex.answer is not None
        document = ex.answer.json()
        if document is None:
            return
        document, link = page_answer(
            document,
            settings,
            ex.page,
            self.services.guards.cursors,
            scope=_page_scope(ex),
            now=self.services.clock.now(),
            path=raw_path(ex.scope).decode("latin-1"),
        )
        ex.answer.replace(document)
        if link is not None:
            ex.extra.append((b"link", link.encode()))


def _page_scope(ex: Exchange) -> str:
    """Cursors are bound to the route and the caller: no replay by someone else."""
    return f"{ex.route.label}|{ex.who}"
