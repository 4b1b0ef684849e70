"""Resource limits on every request and connection (OWASP API4).

- ``RequestLimits`` (ASGI): more header fields than ``server.max_headers`` or more
  header bytes than ``server.max_header_bytes`` get 431 problem+json (RFC 6585 §5),
  audited.
- ``GuardedHttpTools`` (uvicorn): a client that takes longer than
  ``server.header_timeout`` to send a request's headers (slowloris) gets 408 and the
  connection is closed; after ``server.max_requests_per_connection`` requests a
  keep-alive connection is closed after its answer, so one client cannot hold a
  connection for ever. Slow bodies are cut per read by ``server.body_timeout`` where
  bodies are read (the gateway, and Bastion's own endpoints through ``BodyLimit``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bastion.audit import AuditEvent, AuditPipeline, Outcome
from bastion.errors import HeadersTooLarge, ProblemError
from bastion.web.context import correlation_id
from bastion.web.middleware import send_problem
from bastion.web.problems import PROBLEM_JSON, problem_body

log = logging.getLogger("bastion.guards")


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
        if scope["type"] == "http":
            headers = scope["headers"]
            size = sum(len(name) + len(value) + 4 for name, value in headers)
            if len(headers) > self.max_headers or size > self.max_header_bytes:
                await self._refuse(scope, send)
                return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        refusal = HeadersTooLarge(
            f"The request headers are over {self.max_headers} fields or "
            f"{self.max_header_bytes} bytes."
        )
        self._record(scope, refusal)
        await send_problem(send, refusal, correlation_id(scope), [(b"connection", b"close")])


def _timeout_answer() -> bytes:
    body = problem_body(
        408,
        detail="The request headers arrived too slowly.",
        type="urn:bastion:problem:request-timeout",
    )
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        f"content-type: {PROBLEM_JSON}\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a request cap.

    A module-level class, so several worker processes can import it; each process sets
    the limits with ``configure`` when it builds its app (``wiring.create_app``).
    """

    header_timeout = 10.0
    max_requests = 1000
    # Set by the served app once its runtime exists (a connection has no route or app).
    audit: AuditPipeline | None = None
    _header_timer: asyncio.TimerHandle | None = None
    _served = 0

    @classmethod
    def configure(cls, header_timeout: float, max_requests: int) -> None:
        cls.header_timeout = header_timeout
        cls.max_requests = max_requests

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._served += 1
        super().on_headers_complete()
        if self._served >= self.max_requests and self.cycle is not None:
            # The answer says "connection: close" and the connection ends after it.
            self.cycle.keep_alive = False

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered: its headers were complete
        log.warning("closing a connection whose request headers were too slow")
        if self.audit is not None:
            address = self.client[0] if self.client else "unknown"
            self.audit.emit(
                AuditEvent(
                    "guards.resource.refused",
                    Outcome.DENIED,
                    actor=f"ip:{address}",
                    details={"limit": "header_timeout", "status": 408},
                )
            )
        self.transport.write(_timeout_answer())
        self.transport.close()
