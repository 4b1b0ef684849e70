"""``bastion serve`` and ``bastion demo``: run the HTTP service."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import uvicorn

from bastion import logs, wiring
from bastion.cli.output import config_from, config_option, handles_errors, print_line
from bastion.config import Settings
from bastion.config_source import CONFIG_ENV
from bastion.web.server_protocol import GuardedHttpTools

# TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3 suites are all modern.
MODERN_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!RC4:!3DES"

log = logging.getLogger("bastion")


def hardened_ssl_context(_config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """Uvicorn's context, pinned to TLS >= 1.2 and forward-secret AEAD suites."""
    context = default()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(MODERN_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


async def preflight(settings: Settings) -> None:
    """Fail before binding a port: schema current, key ring opens, hot state answers."""
    async with wiring.open_runtime(settings) as runtime:
        await runtime.hot.ping()


def run_server(settings: Settings, config: Path | None) -> None:
    server = settings.server
    asyncio.run(preflight(settings))
    app: Any = wiring.create_app(settings)
    if server.workers > 1:
        # Each worker process builds its own app from the same file and environment; it
        # is named, so that a worker does not look for one (and perhaps find another).
        if config is not None:
            os.environ[CONFIG_ENV] = str(config.resolve())
        app = "bastion.wiring:create_app"
    scheme = "https" if settings.serves_tls else "http"
    print_line(
        f"Bastion ({settings.environment}) on {scheme}://{server.host}:{server.port}", err=True
    )
    uvicorn.run(
        app,
        factory=server.workers > 1,
        workers=server.workers,
        **uvicorn_options(settings),
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How Bastion is served, as keywords for ``uvicorn.run`` or ``uvicorn.Config``: the
    hardened TLS context, no ``Server`` header, the guarded connection protocol and logs
    that redact."""
    server = settings.server
    return {
        "host": server.host,
        "port": server.port,
        "ssl_certfile": str(server.tls_cert) if server.tls_cert else None,
        "ssl_keyfile": str(server.tls_key) if server.tls_key else None,
        "ssl_context_factory": hardened_ssl_context if server.tls_cert else None,
        "server_header": False,
        "proxy_headers": bool(server.trusted_proxies),
        "forwarded_allow_ips": [str(n) for n in server.trusted_proxies] or None,
        "lifespan": "on",
        "timeout_keep_alive": 5,
        # Slow headers and the request cap, with the limits the app publishes at start.
        "http": GuardedHttpTools,
        "access_log": server.access_log,
        "log_level": "info",
        "log_config": logs.uvicorn_log_config(),
    }


def override_server(settings: Settings, **changes: Any) -> Settings:
    values = {k: v for k, v in changes.items() if v is not None}
    if not values:
        return settings
    merged = settings.server.model_dump() | values
    server = type(settings.server).model_validate(merged)
    return settings.model_copy(update={"server": server})


@click.command()
@config_option
@click.option("--host", default=None, help="Bind address (default: server.host).")
@click.option("--port", type=int, default=None, help="Port (default: server.port).")
@click.option("--workers", type=int, default=None, help="Worker processes (default: 1).")
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="PEM certificate chain; serves HTTPS (TLS >= 1.2).",
)
@click.option(
    "--tls-key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="PEM private key for --tls-cert.",
)
@handles_errors
def serve(
    config: Path | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Serve Bastion. Refuses to start on an invalid config, an unmigrated schema or a
    master key that does not open the key ring."""
    source = config_from(config)
    settings = override_server(
        wiring.load(source),
        host=host,
        port=port,
        workers=workers,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    run_server(settings, source.path)
