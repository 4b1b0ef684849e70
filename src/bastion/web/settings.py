"""The ``[server]`` table: how Bastion listens, and the limits on every request.

Read by ``bastion serve`` (listening, TLS, workers, connection limits) and by the http
layer (trusted proxies, body size, HSTS). See docs/configuration.md#server.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, field_validator, model_validator

from bastion.configtypes import (
    AnchoredPath,
    Duration,
    IPNetwork,
    Refusal,
    RefusedInProduction,
    Section,
)

if TYPE_CHECKING:
    from bastion.config import Settings


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    tls_cert: AnchoredPath | None = None
    tls_key: AnchoredPath | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    max_body_bytes: int = Field(1_048_576, ge=1024, le=256 * 1_048_576)
    hsts_max_age: Duration = 31_536_000.0
    # uvicorn's line per request. Off by default: refusals and writes are audited, every
    # answer carries X-Request-Id, and the line costs a quarter of the gateway's
    # throughput (docs/performance.md).
    access_log: bool = False
    # Resource limits on every request (docs/guards.md).
    max_header_bytes: int = Field(16_384, ge=1024, le=1_048_576)
    max_headers: int = Field(100, ge=10, le=1000)
    header_timeout: Duration = 10.0
    body_timeout: Duration = 30.0
    max_requests_per_connection: int = Field(1000, ge=1)
    debug: Annotated[bool, RefusedInProduction(bool, "debug pages are not allowed")] = False

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if not isinstance(value, list | tuple):
            return value
        return tuple(ipaddress.ip_network(str(v), strict=False) for v in value)

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be set together")
        for path in (self.tls_cert, self.tls_key):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file not found: {path}")
        return self

    def production_refusals(self, settings: Settings) -> Iterator[Refusal]:
        if self.tls_cert is None and not self.trusted_proxies:
            yield Refusal(
                "",
                "plain HTTP: set server.tls_cert and server.tls_key, or declare the "
                "TLS-terminating proxy in server.trusted_proxies",
            )
        if self.workers > 1 and settings.redis_url is None:
            yield Refusal(
                "workers",
                "several workers with in-memory hot state: counters and one-time values "
                "would not be shared; set BASTION_REDIS_URL or hot_state.url",
            )
