"""One upstream service: a pooled aiohttp session with the timeouts its settings declare.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_from_bytes

import aiohttp
from yarl import URL

from bastion.clock import Clock
from bastion.errors import GatewayTimeout, UpstreamFailure
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
        self._base = settings.url
        self._timeout = aiohttp.ClientTimeout(
            total=settings.total_timeout,
            connect=settings.connect_timeout,
            sock_read=settings.read_timeout,
        )
        self._session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    async def start(self) -> None:
        connector = self._transport.connector(
            ssl=tls_context(self.settings) or False,
            limit=self.settings.max_connections,
            keepalive_timeout=30,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            # Bodies reach the app decoded (Content-Encoding is dropped), so shaping and
            # owner checks always see JSON, whatever the upstream chose to send.
            auto_decompress=True,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        # aiohttp quietly re-sends an idempotent request once when a kept-alive
        # connection turns out closed. Retries here are explicit, budgeted and counted
        # (tests/guards/test_faults.py), so that hidden one is switched off.
        self._session._retry_connection = False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self.credential is not None:
            await self.credential.close()

    def url(self, path: str, query: bytes = b"") -> URL:
        # The path was rendered from a template with every parameter percent-encoded;
        # encoded=True keeps yarl from decoding or normalising it again.
        if not query:
            return URL(self._base + path, encoded=True)
        encoded = quote_from_bytes(query, safe=QUERY_SAFE)
        target = self._base + path + "?" + encoded
        return URL(target, encoded=True)

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
        if self._session is None:
            raise RuntimeError("upstream used before start()")
        url = self.url(path, query)
        keyed = keyed and self.settings.retries.keyed
        return UpstreamCall(self, self._session, method, url, list(headers), body, keyed)


class UpstreamCall:
    """A plain async context manager (cheaper than a generator-based one on the hot path)."""

    __slots__ = ("_body", "_call", "_headers", "_keyed", "_method", "_session", "_up", "_url")

    def __init__(
        self,
        upstream: Upstream,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: list[tuple[str, str]],
        body: bytes | None,
        keyed: bool,
    ) -> None:
        self._up = upstream
        self._session = session
        self._method = method
        self._url = url
        self._headers = headers
        self._body = body
        self._keyed = keyed
        self._call: Any = None

    def _send(self) -> Any:
        return self._session.request(
            self._method,
            self._url,
            headers=self._headers,
            data=self._body,
            allow_redirects=False,
        )

    async def __aenter__(self) -> aiohttp.ClientResponse:
        guard = self._up.resilience
        if guard is None:
            self._call = self._send()
            try:
                response: aiohttp.ClientResponse = await self._call.__aenter__()
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise _translated(exc, self._up.name) from exc
            return response
        return await self._guarded(guard)

    async def _guarded(self, guard: Resilience) -> aiohttp.ClientResponse:
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
            call = self._send()
            try:
                response: aiohttp.ClientResponse = await call.__aenter__()
            except (TimeoutError, aiohttp.ClientError) as exc:
                if breaker is not None and breaker.note(False, now := clock.now()):
                    await breaker.publish(now)
                # A refused connection sent nothing: any method may try again.
                safe = isinstance(exc, aiohttp.ClientConnectorError) or retryable(
                    self._method, self._keyed
                )
                delay = self._retry_delay(guard, attempt, safe, None)
                if delay is None:
                    raise _translated(exc, self._up.name) from exc
            else:
                failed = response.status >= 500
                if breaker is not None and breaker.note(not failed, now := clock.now()):
                    await breaker.publish(now)
                delay = None
                if response.status in RETRYABLE_STATUS:
                    wait = retry_after(response.headers.get("retry-after"), guard.clock.now())
                    delay = self._retry_delay(
                        guard, attempt, retryable(self._method, self._keyed), wait
                    )
                if delay is None:
                    self._call = call
                    return response
                await call.__aexit__(None, None, None)
            attempt += 1
            await asyncio.sleep(delay)

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
        if self._call is not None:
            await self._call.__aexit__(kind, exc, tb)
        if exc is not None and isinstance(exc, TimeoutError | aiohttp.ClientError):
            raise _translated(exc, self._up.name) from exc


def _translated(exc: BaseException, name: str) -> UpstreamFailure:
    if isinstance(exc, TimeoutError):
        log.warning("upstream %s timed out", name)
        failure: UpstreamFailure = GatewayTimeout(TIMED_OUT)
    else:
        log.warning("upstream %s failed: %s", name, type(exc).__name__)
        failure = UpstreamFailure(UNAVAILABLE)
    # Only a connection that was never made proves the upstream did nothing.
    failure.maybe_processed = not isinstance(exc, aiohttp.ClientConnectorError)
    return failure


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or ``UpstreamFailure`` when it is larger than ``limit``."""
    length = response.content_length
    if length is not None and length > limit:
        raise UpstreamFailure(UNAVAILABLE)
    if length is not None:
        try:
            return await response.read()  # the declared length is within the limit
        except TimeoutError as exc:
            raise GatewayTimeout(TIMED_OUT) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailure(UNAVAILABLE) from exc
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.content.iter_chunked(65_536):
            size += len(chunk)
            if size > limit:
                log.warning("upstream answer over %d bytes refused", limit)
                raise UpstreamFailure(UNAVAILABLE)
            chunks.append(chunk)
    except TimeoutError as exc:
        raise GatewayTimeout(TIMED_OUT) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamFailure(UNAVAILABLE) from exc
    return b"".join(chunks)
