"""One upstream service: a pooled aiohttp session with the timeouts its settings declare.

The base URL comes from configuration only; a request supplies a path that the router
built from a template, so no input can choose the host, port or scheme (no open proxy,
no SSRF). Redirects are never followed. Connection failures and timeouts become
``UpstreamFailure`` problems (502, 504) whose text names nothing internal.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote_from_bytes

import aiohttp
from yarl import URL

from bastion.errors import UpstreamFailure
from bastion.gateway.credentials import StaticCredential
from bastion.gateway.settings import UpstreamSettings

log = logging.getLogger("bastion.gateway.upstream")

# ";" is encoded: some frameworks split parameters on it, and the gateway does not, so a
# raw one could smuggle a second value past a parameter bound to a claim.
QUERY_SAFE = "=&%+/?:@!$'()*,~-._"
UNAVAILABLE = "The service behind this API is unavailable. Try again shortly."
TIMED_OUT = "The service behind this API did not answer in time."


def tls_context(settings: UpstreamSettings) -> ssl.SSLContext | None:
    if not settings.url.startswith("https://"):
        return None
    context = ssl.create_default_context(
        cafile=None if settings.tls_ca_file is None else str(settings.tls_ca_file)
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.tls_client_cert is not None and settings.tls_client_key is not None:
        context.load_cert_chain(str(settings.tls_client_cert), str(settings.tls_client_key))
    return context


class Upstream:
    def __init__(self, settings: UpstreamSettings, static: StaticCredential | None = None) -> None:
        self.settings = settings
        self.static = static
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
        connector = aiohttp.TCPConnector(
            limit=self.settings.max_connections,
            ssl=tls_context(self.settings) or False,
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

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def url(self, path: str, query: bytes = b"") -> URL:
        # The path was rendered from a template with every parameter percent-encoded;
        # encoded=True keeps yarl from decoding or normalising it again.
        # Bytes outside the query's legal characters are percent-encoded; existing
        # escapes are kept as the app sent them.
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
    ) -> UpstreamCall:
        """``async with upstream.request(...) as response``: errors become problems."""
        if self._session is None:
            raise RuntimeError("upstream used before start()")
        call = self._session.request(
            method,
            self.url(path, query),
            headers=list(headers),
            data=body,
            allow_redirects=False,
        )
        return UpstreamCall(call, self.name)


class UpstreamCall:
    """A plain async context manager (cheaper than a generator-based one on the hot path)
    that translates aiohttp's failures into ``UpstreamFailure`` at this boundary."""

    __slots__ = ("_call", "_name")

    def __init__(self, call: Any, name: str) -> None:
        self._call = call
        self._name = name

    async def __aenter__(self) -> aiohttp.ClientResponse:
        try:
            response: aiohttp.ClientResponse = await self._call.__aenter__()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _translated(exc, self._name) from exc
        return response

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        await self._call.__aexit__(kind, exc, tb)
        if exc is not None and isinstance(exc, TimeoutError | aiohttp.ClientError):
            raise _translated(exc, self._name) from exc


def _translated(exc: BaseException, name: str) -> UpstreamFailure:
    if isinstance(exc, TimeoutError):
        log.warning("upstream %s timed out", name)
        return UpstreamFailure(TIMED_OUT, status=504, title="Gateway Timeout")
    log.warning("upstream %s failed: %s", name, type(exc).__name__)
    return UpstreamFailure(UNAVAILABLE)


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or ``UpstreamFailure`` when it is larger than ``limit``."""
    length = response.content_length
    if length is not None and length > limit:
        raise UpstreamFailure(UNAVAILABLE)
    if length is not None:
        try:
            return await response.read()  # the declared length is within the limit
        except TimeoutError as exc:
            raise UpstreamFailure(TIMED_OUT, status=504, title="Gateway Timeout") from exc
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
        raise UpstreamFailure(TIMED_OUT, status=504, title="Gateway Timeout") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamFailure(UNAVAILABLE) from exc
    return b"".join(chunks)
