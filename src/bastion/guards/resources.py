"""Resource limits on every request and connection (OWASP API4).

- ``RequestLimits`` (ASGI): more header fields than ``server.max_headers`` or more
  header bytes than ``server.max_header_bytes`` get 431 problem+json (RFC 6585 §5),
  audited.

Slow headers (``server.header_timeout``, 408) and the per-connection request cap
(``server.max_requests_per_connection``) come before any ASGI request exists, so they
live in the server's protocol, ``bastion.web.server_protocol``. Slow bodies are cut per
read by ``server.body_timeout`` where bodies are read (the gateway, and Bastion's own
endpoints through ``BodyLimit``).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.audit import AuditEvent, AuditPipeline, Outcome
from bastion.errors import HeadersTooLarge, ProblemError
from bastion.web.context import correlation_id
from bastion.web.middleware import send_problem


def refusal_auditor(audit: AuditPipeline) -> Callable[[Scope, ProblemError], None]:
    """Emit ``guards.resource.refused`` for a refused request."""

    def record(scope: Scope, exc: ProblemError) -> None:
        client = scope.get("client")
        audit.emit(
            AuditEvent(
                "guards.resource.refused",
                Outcome.DENIED,
                actor=f"ip:{client[0]}" if client else "unknown",
                correlation_id=correlation_id(scope),
                details={"limit": type(exc).__name__, "status": exc.status},
            )
        )

    return record


class RequestLimits:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_headers: int,
        max_header_bytes: int,
        audit: AuditPipeline,
    ) -> None:
        self.app = app
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes
        self._record = refusal_auditor(audit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.exceeded(scope):
            await self.refuse(scope, send)
            return
        await self.app(scope, receive, send)

    def exceeded(self, scope: Scope) -> bool:
        """Whether an http request's headers are over either limit."""
        headers = scope["headers"]
        if len(headers) > self.max_headers:
            return True
        # Each field counts its name, its value and 4 bytes of ": " and CRLF. A plain
        # loop: this runs on every request, and a generator costs twice as much.
        size = 4 * len(headers)
        for name, value in headers:
            size += len(name) + len(value)
        return size > self.max_header_bytes

    async def refuse(self, scope: Scope, send: Send) -> None:
        """Audit and answer 431, asking the client to close the connection."""
        refusal = HeadersTooLarge(
            f"The request headers are over {self.max_headers} fields or "
            f"{self.max_header_bytes} bytes."
        )
        self._record(scope, refusal)
        await send_problem(send, refusal, correlation_id(scope), [(b"connection", b"close")])
