"""One upstream service: a keep-alive connection pool (``bastion.gateway.http1``) with the
timeouts its settings declare.

The base URL comes from configuration only; a request supplies a path that the router
built from a template, so no input can choose the host, port or scheme (no open proxy,
no SSRF). Redirects are never followed. Connection failures and timeouts become
``UpstreamFailure`` problems (502, 504) whose text names nothing internal.

Each call first asks the upstream's circuit breaker, then retries where that is safe
(``bastion.guards.retries``): a refused connection for any method; a reset, a timeout
or 502/503/504 only for idempotent methods or requests with an idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_from_bytes, urlsplit

from bastion.clock import Clock
from bastion.errors import GatewayTimeout, UpstreamFailure
from bastion.gateway.http1 import (
    Answer,
    ConnectFailed,
    Pool,
    UnsendableRequest,
    UpstreamBroken,
)
from bastion.gateway.service_credentials import ServiceCredential
from bastion.gateway.settings import UpstreamSettings
from bastion.gateway.transport import TCP, UpstreamTransport
from bastion.guards.resilience import SharedBreaker
from bastion.guards.retries import (
    RETRYABLE_STATUS,
    RetryBudget,
    RetryPolicy,
    retry_after,
    retryable,
)

log = logging.getLogger("bastion.gateway.upstream")

# ";" is encoded: some frameworks split parameters on it, and the gateway does not, so a
# raw one could smuggle a second value past a parameter bound to a claim.
QUERY_SAFE = "=&%+/?:@!$'()*,~-._"
UNAVAILABLE = "The service behind this API is unavailable. Try again shortly."
TIMED_OUT = "The service behind this API did not answer in time."


def tls_context(settings: UpstreamSettings, url: str | None = None) -> ssl.SSLContext | None:
    """TLS towards the upstream (or another of its URLs, such as its token endpoint):
    its own CA and client certificate when declared, TLS 1.2 at least."""
    if not (url or settings.url).startswith("https://"):
        return None
    context = ssl.create_default_context(
        cafile=None if settings.tls_ca_file is None else str(settings.tls_ca_file)
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.tls_client_cert is not None and settings.tls_client_key is not None:
        context.load_cert_chain(str(settings.tls_client_cert), str(settings.tls_client_key))
    return context


@dataclass
class Resilience:
    """What guards an upstream's calls: breaker, retry policy and budget (docs/guards.md)."""

    breaker: SharedBreaker | None
    policy: RetryPolicy
    budget: RetryBudget
    clock: Clock
    rng: random.Random


class Upstream:
    def __init__(
        self,
        settings: UpstreamSettings,
        credential: ServiceCredential | None = None,
        resilience: Resilience | None = None,
        transport: UpstreamTransport = TCP,
    ) -> None:
        self.settings = settings
        self.credential = credential
        self.resilience = resilience
        self._transport = transport
        parts = urlsplit(settings.url)
        if parts.hostname is None:
            raise ValueError(f"upstream {settings.name}: the URL names no host")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        # The base path the route's rendered path is appended to.
        self._base = parts.path.rstrip("/")
        self._pool: Pool | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    async def start(self) -> None:
        settings = self.settings
        # Bodies reach the app decoded (Content-Encoding is dropped), so shaping and
        # owner checks always see JSON, whatever the upstream chose to send. No request
        # is re-sent quietly when a kept-alive connection turns out closed: retries are
        # explicit, budgeted and counted (tests/guards/test_faults.py).
        self._pool = Pool(
            host=self._host,
            port=self._port,
            tls=tls_context(settings),
            limit=settings.max_connections,
            keepalive_timeout=30,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            total_timeout=settings.total_timeout,
            opener=self._transport.opener(),
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        if self.credential is not None:
            await self.credential.close()

    def url(self, path: str, query: bytes = b"") -> str:
        """The request target: the base path, then the path rendered from a template
        with every parameter percent-encoded (sent as it is, never decoded again)."""
        if not query:
            return self._base + path
        return self._base + path + "?" + quote_from_bytes(query, safe=QUERY_SAFE)

    def request(
        self,
        method: str,
        path: str,
        query: bytes,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        *,
        keyed: bool = False,
    ) -> UpstreamCall:
        """``async with upstream.request(...) as response``: the breaker is asked first,
        failures are retried where that is safe, and errors become problems."""
        if self._pool is None:
            raise RuntimeError("upstream used before start()")
        target = self.url(path, query)
        keyed = keyed and self.settings.retries.keyed
        return UpstreamCall(self, self._pool, method, target, headers, body, keyed)


# What a failed call can raise below the gateway's own problems.
_CALL_ERRORS = (TimeoutError, ConnectionError)


class UpstreamCall:
    """A plain async context manager (cheaper than a generator-based one on the hot path)."""

    __slots__ = ("_answer", "_body", "_headers", "_keyed", "_method", "_pool", "_target", "_up")

    def __init__(
        self,
        upstream: Upstream,
        pool: Pool,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        keyed: bool,
    ) -> None:
        self._up = upstream
        self._pool = pool
        self._method = method
        self._target = target
        self._headers = headers
        self._body = body
        self._keyed = keyed
        self._answer: Answer | None = None

    def _send(self) -> Awaitable[Answer]:
        return self._pool.request(self._method, self._target, self._headers, self._body)

    async def __aenter__(self) -> Answer:
        guard = self._up.resilience
        try:
            if guard is None:
                self._answer = await self._send()
                return self._answer
            return await self._guarded(guard)
        except _CALL_ERRORS as exc:
            raise _translated(exc, self._up.name) from exc
        except UnsendableRequest as exc:
            # A header field that could split the request: never sent, and never will be.
            log.warning("request to upstream %s not sent: %s", self._up.name, exc)
            raise UpstreamFailure(UNAVAILABLE) from exc

    async def _guarded(self, guard: Resilience) -> Answer:
        clock = guard.clock
        breaker = guard.breaker
        guard.budget.deposit(clock.now())
        attempt = 0
        while True:
            if breaker is not None:
                now = clock.now()
                if breaker.sync_due(now):
                    await breaker.adopt_shared(now)
                breaker.admit(now)
            try:
                response = await self._send()
            except _CALL_ERRORS as exc:
                if breaker is not None and breaker.note(False, now := clock.now()):
                    await breaker.publish(now)
                # A refused connection sent nothing: any method may try again.
                safe = isinstance(exc, ConnectFailed) or retryable(self._method, self._keyed)
                delay = self._retry_delay(guard, attempt, safe, None)
                if delay is None:
                    raise _translated(exc, self._up.name) from exc
            else:
                try:
                    delay = await self._judge(guard, response, attempt)
                finally:
                    # Whatever happens while the answer is judged (a cancellation while
                    # the breaker publishes, an error), its connection is not lost.
                    if self._answer is not response:
                        response.release()
                if delay is None:
                    return response
            attempt += 1
            await asyncio.sleep(delay)

    async def _judge(self, guard: Resilience, response: Answer, attempt: int) -> float | None:
        """Note the answer with the breaker; the wait before trying again, or None to
        keep this answer (then ``self._answer``)."""
        breaker = guard.breaker
        failed = response.status >= 500
        if breaker is not None and breaker.note(not failed, now := guard.clock.now()):
            await breaker.publish(now)
        delay = None
        if response.status in RETRYABLE_STATUS:
            wait = retry_after(response.header(b"retry-after"), guard.clock.now())
            delay = self._retry_delay(guard, attempt, retryable(self._method, self._keyed), wait)
        if delay is None:
            self._answer = response
        return delay

    def _retry_delay(
        self, guard: Resilience, attempt: int, safe: bool, wait: float | None
    ) -> float | None:
        """Seconds before the next try, or None to stop (not safe, out of attempts or
        budget, or an upstream Retry-After longer than the backoff cap)."""
        policy = guard.policy
        if not safe or attempt >= policy.attempts:
            return None
        if wait is not None and wait > policy.cap:
            return None
        if not guard.budget.withdraw(guard.clock.now()):
            log.warning("retry budget of upstream %s spent", self._up.name)
            return None
        return wait if wait is not None else policy.backoff(attempt, guard.rng)

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if self._answer is not None:
            self._answer.release()
        if exc is not None and isinstance(exc, TimeoutError | ConnectionError):
            raise _translated(exc, self._up.name) from exc


def _translated(exc: BaseException, name: str) -> UpstreamFailure:
    if isinstance(exc, TimeoutError):
        log.warning("upstream %s timed out", name)
        failure: UpstreamFailure = GatewayTimeout(TIMED_OUT)
    else:
        log.warning("upstream %s failed: %s", name, type(exc).__name__)
        failure = UpstreamFailure(UNAVAILABLE)
    # Only a connection that was never made proves the upstream did nothing.
    failure.maybe_processed = not isinstance(exc, ConnectFailed)
    return failure


async def read_limited(response: Answer, limit: int) -> bytes:
    """The whole body, or ``UpstreamFailure`` when it is larger than ``limit``."""
    length = response.content_length
    if length is not None and length > limit:
        raise UpstreamFailure(UNAVAILABLE)
    try:
        body = await response.read(limit)
    except TimeoutError as exc:
        raise GatewayTimeout(TIMED_OUT) from exc
    except UpstreamBroken as exc:
        raise UpstreamFailure(UNAVAILABLE) from exc
    if body is None:
        log.warning("upstream answer over %d bytes refused", limit)
        raise UpstreamFailure(UNAVAILABLE)
    return body
