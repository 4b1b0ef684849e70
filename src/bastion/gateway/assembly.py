"""Build the gateway from validated settings and the runtime's services."""

from __future__ import annotations

import random
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from bastion.audit import AuditPipeline
from bastion.authserver.access import DENYLIST_PREFIX, AccessTokens
from bastion.authserver.dpop import Dpop
from bastion.caches import TTLCache
from bastion.clock import Clock
from bastion.config import Settings
from bastion.device.policies import RiskPolicies
from bastion.device.service import DeviceTrust
from bastion.errors import StoreUnavailable
from bastion.gateway.authentication import Authenticator
from bastion.gateway.credentials import InternalTokens
from bastion.gateway.exchange import Services
from bastion.gateway.guarding import STALE_ENTRIES
from bastion.gateway.jwks import MAX_JWKS_BYTES, JwksCache
from bastion.gateway.objects import Ownership
from bastion.gateway.pipeline import Gateway
from bastion.gateway.routes import compile_routes
from bastion.gateway.service_credentials import service_credential
from bastion.gateway.settings import UpstreamSettings
from bastion.gateway.transport import DEFAULT_KEEPALIVE, DEFAULT_LIMIT, TCP, UpstreamTransport
from bastion.gateway.upstream import Resilience, Upstream, tls_context
from bastion.guards.resilience import SharedBreaker
from bastion.guards.retries import RetryBudget, RetryPolicy
from bastion.guards.service import Guards
from bastion.store.protocols import HotStore
from bastion.store.sql.database import Database
from bastion.store.sql.ownership import SqlOwnershipStore


class JwksFetcher:
    """GETs JWKS documents over one pooled session; failures are ``StoreUnavailable``."""

    def __init__(self, transport: UpstreamTransport = TCP) -> None:
        self._transport = transport
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, url: str, timeout: float) -> bytes:  # noqa: ASYNC109 - aiohttp's own
        if self._session is None:
            connector = self._transport.connector(
                ssl=True, limit=DEFAULT_LIMIT, keepalive_timeout=DEFAULT_KEEPALIVE
            )
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            )
        try:
            async with self._session.get(
                url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
            ) as response:
                if response.status != 200:
                    raise StoreUnavailable("jwks", f"HTTP {response.status}")
                body = b""
                async for chunk in response.content.iter_chunked(16_384):
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        break  # parse_jwks refuses it as too large
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StoreUnavailable("jwks", type(exc).__name__) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def build_gateway(
    settings: Settings,
    audience: str,
    *,
    access: AccessTokens,
    dpop: Dpop,
    database: Database,
    hot: HotStore,
    audit: AuditPipeline,
    clock: Clock,
    environ: Mapping[str, str],
    guards: Guards,
    transport: UpstreamTransport = TCP,
    risk: RiskPolicies | None = None,
    device: DeviceTrust | None = None,
) -> Gateway:
    """Raises ``ValueError`` when a route's schema or OpenAPI operation does not compile, or
    an upstream's own credential cannot be read. Every outbound connection goes through
    ``transport``."""
    gateway = settings.gateway
    upstreams = {
        u.name: Upstream(
            u,
            service_credential(
                u, environ, clock, tls_context(u, u.credential.token_url), transport
            ),
            _resilience(u, hot, audit, clock),
            transport,
        )
        for u in gateway.upstreams
    }
    fetcher = JwksFetcher(transport)
    keys = access.keys

    async def is_revoked(jti: str) -> bool:
        return await hot.get(DENYLIST_PREFIX + jti) is not None

    authenticator = Authenticator(
        issuer=settings.issuer,
        audience=audience,
        bastion_keys=keys.jwks,
        refresh_keys=keys.refresh_if_stale,
        is_revoked=is_revoked,
        external=[(i, JwksCache(i, fetcher, clock)) for i in gateway.issuers],
        clock=clock,
        cache_size=gateway.token_cache_size,
    )
    services = Services(
        authenticator=authenticator,
        internal_tokens=InternalTokens(access.mint, gateway.client_id, clock),
        ownership=Ownership(SqlOwnershipStore(database), clock),
        audit=audit,
        clock=clock,
        guards=guards,
        dpop=dpop,
        public_origin=gateway.public_url or _origin(settings.issuer),
        body_timeout=settings.server.body_timeout,
        stale=TTLCache(clock, STALE_ENTRIES),
        risk=risk,
        device=device,
    )
    return Gateway(
        prefix=gateway.prefix,
        router=compile_routes(gateway, upstreams, settings.server.max_body_bytes),
        upstreams=list(upstreams.values()),
        services=services,
        closers=[fetcher.close],
    )


def _resilience(
    upstream: UpstreamSettings, hot: HotStore, audit: AuditPipeline, clock: Clock
) -> Resilience:
    retries = upstream.retries
    policy = RetryPolicy(
        attempts=retries.attempts,
        base=retries.base,
        cap=retries.cap,
        budget_ratio=retries.budget_ratio,
        budget_floor=retries.budget_floor,
    )
    return Resilience(
        breaker=SharedBreaker(upstream.name, upstream.breaker, hot, audit, clock)
        if upstream.breaker.enabled
        else None,
        policy=policy,
        budget=RetryBudget(policy),
        clock=clock,
        # Jitter only spreads retries out; it protects nothing, so no CSPRNG is needed.
        rng=random.Random(),  # noqa: S311
    )
