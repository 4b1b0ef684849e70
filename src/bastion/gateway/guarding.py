"""The guards as gateway steps: pagination in front of list endpoints, and what a stale
fallback keeps of the last good answer (rate limits, idempotency and retries live in
``bastion.guards``; the pipeline calls them in its order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from bastion.errors import InvalidInput
from bastion.gateway.shaping import pointer_value
from bastion.guards.cursors import Cursors, Position
from bastion.guards.settings import PaginationSettings

CURSOR_PARAM = "cursor"
STALE_ENTRIES = 1000


@dataclass(frozen=True)
class Page:
    """A page request translated for the upstream."""

    size: int
    position: Position
    upstream_query: bytes
    # The app's own query without the cursor, to build the next link from.
    app_query: list[tuple[str, str]]


def page_request(
    settings: PaginationSettings,
    query: dict[str, str | list[str]],
    cursors: Cursors,
    *,
    scope: str,
    now: float,
) -> Page:
    """Read ``limit`` and ``cursor``; refuse what only the gateway may set (400)."""
    pairs = _pairs(query)
    owned = {settings.offset_param, settings.token_param} - {settings.limit_param}
    if any(name in owned for name, _ in pairs):
        raise InvalidInput("Use the cursor from the Link header to page through results.")
    if any(isinstance(query.get(name), list) for name in (CURSOR_PARAM, settings.limit_param)):
        raise InvalidInput("limit and cursor may appear once.")
    raw_limit = query.get(settings.limit_param)
    size = settings.default_page_size
    if raw_limit is not None:
        text = str(raw_limit)
        digits = len(str(settings.max_page_size))
        if (
            not text.isascii()
            or not text.isdigit()
            or len(text) > digits
            or not 1 <= int(text) <= settings.max_page_size
        ):
            raise InvalidInput(f"limit must be a whole number from 1 to {settings.max_page_size}.")
        size = int(text)
    cursor = query.get(CURSOR_PARAM)
    position = (
        Position(offset=0) if cursor is None else cursors.open(str(cursor), scope=scope, now=now)
    )
    app_query = [(k, v) for k, v in pairs if k not in (CURSOR_PARAM, settings.limit_param)]
    upstream = [*app_query, (settings.limit_param, str(size))]
    if settings.style == "offset":
        upstream.append((settings.offset_param, str(position.offset or 0)))
    elif position.token is not None:
        upstream.append((settings.token_param, position.token))
    return Page(size, position, urlencode(upstream, quote_via=quote).encode(), app_query)


def page_answer(
    document: Any,
    settings: PaginationSettings,
    page: Page,
    cursors: Cursors,
    *,
    scope: str,
    now: float,
    path: str,
) -> tuple[Any, str | None]:
    """The document (with the upstream's own token removed) and the ``Link`` value."""
    items = pointer_value(document, settings.items) if settings.items else document
    if not isinstance(items, list):
        return document, None
    following: Position | None = None
    if settings.style == "offset":
        if len(items) >= page.size:
            following = Position(offset=(page.position.offset or 0) + len(items))
    else:
        token = pointer_value(document, settings.next_token)
        _remove(document, settings.next_token)
        if isinstance(token, str) and token:
            following = Position(token=token)
    if following is None:
        return document, None
    cursor = cursors.issue(following, scope=scope, now=now)
    query = urlencode(
        [*page.app_query, (settings.limit_param, str(page.size)), (CURSOR_PARAM, cursor)],
        quote_via=quote,
    )
    # RFC 8288 §3: a link to the next page of the same resource.
    return document, f'<{path}?{query}>; rel="next"'


def _pairs(query: dict[str, str | list[str]]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, item))
    return pairs


def _remove(document: Any, pointer: str) -> None:
    *parents, last = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
    node = document
    for token in parents:
        node = node.get(token) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


@dataclass(frozen=True)
class Kept:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    at: float
