"""Plain ASGI middleware on every response, outermost first (see ``build_app``):

1. ``SecurityHeaders`` adds the headers a hardened API sets and removes ``Server``,
   outermost so that even error answers carry them.
2. ``ErrorBoundary``  assigns the correlation id and turns any exception that escapes
   into a problem+json answer; nothing internal reaches the client.
3. ``BodyLimit``      refuses bodies over the limit, declared or streamed.

Requests under the gateway's prefix pass none of these wrappers: ``GatewayEdge``
(``bastion.web.gateway_edge``) does what they do in one layer, with the same functions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.errors import BodyTooLarge, ProblemError, RequestTimeout, StoreError
from bastion.web.context import new_correlation_id
from bastion.web.problems import PROBLEM_JSON, problem_body

log = logging.getLogger("bastion.http")

# Set on every answer, replacing whatever the app or an upstream said.
_FIXED = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_NO_STORE = (b"cache-control", b"no-store")


def page_policy(image_origins: tuple[str, ...] = ()) -> str:
    """The pages' CSP: nothing inline, everything from Bastion itself; ``image_origins``
    adds https origins for images (an app's logo, on that app's pages only)."""
    images = " ".join(("'self'", "data:", *image_origins))
    return (
        f"default-src 'none'; style-src 'self'; img-src {images}; script-src 'self'; "
        "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


_PAGE_CSP = (b"content-security-policy", page_policy().encode())
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")

STORE_DOWN_DETAIL = "The service is temporarily unavailable. Try again shortly."
INTERNAL_DETAIL = "An unexpected error occurred. Quote the correlation id when reporting it."


def problem_for(
    exc: BaseException, correlation_id: str | None
) -> tuple[int, bytes, dict[str, str]]:
    """Status, problem body and headers for an exception.

    Only ``ProblemError`` carries a client-safe message; for everything else the body
    is generic, because exception messages can hold paths, SQL or internal names.
    """
    if isinstance(exc, ProblemError):
        body = problem_body(
            exc.status,
            detail=exc.detail,
            title=exc.title,
            type=exc.type,
            correlation_id=correlation_id,
            **exc.extensions,
        )
        return exc.status, body, dict(exc.headers)
    if isinstance(exc, StoreError):  # unreachable, or answering with errors: both transient
        body = problem_body(
            503,
            detail=STORE_DOWN_DETAIL,
            correlation_id=correlation_id,
            type="urn:bastion:problem:store-unavailable",
        )
        return 503, body, {"retry-after": "5"}
    return 500, problem_body(500, detail=INTERNAL_DETAIL, correlation_id=correlation_id), {}


async def send_problem(
    send: Send,
    exc: BaseException,
    correlation_id: str | None,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer with ``problem_for(exc)`` straight on an ASGI ``send``."""
    status, body, headers = problem_for(exc, correlation_id)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *((k.encode(), v.encode()) for k, v in headers.items()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ErrorBoundary:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = new_correlation_id()
        cid_bytes = cid.encode()
        scope.setdefault("state", {})["correlation_id"] = cid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", cid_bytes)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            await answer_failure(send_with_id, exc, cid, started=started)


async def answer_failure(send: Send, exc: Exception, cid: str, *, started: bool) -> None:
    """What ``ErrorBoundary`` does with an exception that escaped the app: log it (with a
    traceback only when unexpected) and answer with a problem, unless the answer began."""
    if isinstance(exc, ProblemError | StoreError):
        log.warning("request %s failed: %s", cid, type(exc).__name__)
    else:
        log.exception("request %s failed with an unhandled error", cid)
    if started:
        return  # the status line is gone; the server closes the connection
    await send_problem(send, exc, cid)


class SecurityHeaders:
    """Headers per OWASP's secure headers guidance for APIs and the pages Bastion serves.

    Works on the raw header list in one pass (no header object per response): this
    wrapper runs on every answer, the gateway's included.
    """

    def __init__(self, app: ASGIApp, *, hsts_max_age: float, behind_tls_proxy: bool) -> None:
        if hsts_max_age < 0:
            raise ValueError("hsts_max_age cannot be negative")
        self.app = app
        self._hsts = (
            b"strict-transport-security",
            f"max-age={int(hsts_max_age)}; includeSubDomains".encode(),
        )
        # Declared proxies terminate TLS, so every response reaches the browser over
        # HTTPS. A browser ignores the header on a plain-HTTP response (RFC 6797 §8.1),
        # so sending it whenever a proxy is declared is safe, and it does not depend on
        # the proxy remembering X-Forwarded-Proto.
        self._always_hsts = behind_tls_proxy

    def hsts_for(self, scope: Scope) -> tuple[bytes, bytes] | None:
        """The HSTS field for this request's answers, or None."""
        return self._hsts if self._always_hsts or scope.get("scheme") == "https" else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hsts = self.hsts_for(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = secured(message.get("headers", ()), hsts)
            await send(message)

        await self.app(scope, receive, send_with_headers)


_DROP = frozenset({b"server", b"x-powered-by", *(name for name, _ in _FIXED)})


def secured(
    headers: Iterable[tuple[bytes, bytes]],
    hsts: tuple[bytes, bytes] | None,
    request_id: tuple[bytes, bytes] | None = None,
) -> list[tuple[bytes, bytes]]:
    """An answer's header list as ``SecurityHeaders`` sends it: names lower-cased, the
    stack-revealing and fixed fields replaced, defaults added where the app set none.

    ``request_id`` is the correlation id field, placed where ``ErrorBoundary`` puts it
    (after the app's fields), for a caller that does both in one pass (``GatewayEdge``).
    Works on the raw list in one pass, no header object per response.
    """
    kept: list[tuple[bytes, bytes]] = []
    cache_control = policy = html = False
    for name, value in headers:
        lowered = name.lower()
        if lowered in _DROP:
            continue
        if lowered == b"cache-control":
            cache_control = True
        elif lowered == b"content-security-policy":
            policy = True
        elif lowered == b"content-type":
            html = value.startswith(b"text/html")
        kept.append((lowered, value))
    if request_id is not None:
        kept.append(request_id)
    kept.extend(_FIXED)
    if not cache_control:
        kept.append(_NO_STORE)
    if not policy:
        kept.append(_PAGE_CSP if html else _API_CSP)
    if hsts is not None:
        kept.append(hsts)
    return kept


class BodyLimit:
    """Refuses request bodies over ``max_bytes``: by Content-Length, or while streaming."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        per_read: float | None = None,
        on_refusal: Callable[[Scope, ProblemError], None] | None = None,
    ) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.app = app
        self.max_bytes = max_bytes
        # A client that stops sending mid-body (slowloris) is cut off, per read.
        self.per_read = per_read
        self.on_refusal = on_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self._limited(scope, receive, send)
        except (BodyTooLarge, RequestTimeout) as exc:
            if self.on_refusal is not None:
                self.on_refusal(scope, exc)
            raise

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise ProblemError("Content-Length is not a number.") from None
                if declared > self.max_bytes:
                    raise BodyTooLarge(f"The request body is over {self.max_bytes} bytes.")
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            try:
                async with asyncio.timeout(self.per_read):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout("The request body arrived too slowly.") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(f"The request body is over {self.max_bytes} bytes.")
            return message

        await self.app(scope, counting_receive, send)
