"""Serve an ASGI app on a real loopback socket in a background thread (uvicorn)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn
from starlette.types import ASGIApp

from tests.support.services import free_port


@contextmanager
def serve_in_thread(
    app: ASGIApp,
    port: int | None = None,
    *,
    lifespan: Literal["on", "off"] = "off",
    tls: dict[str, Any] | None = None,
    **options: Any,
) -> Iterator[str]:
    """Yield the base URL while ``app`` serves on 127.0.0.1 (HTTPS with ``tls`` options,
    uvicorn's ``ssl_*`` keyword arguments)."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan=lifespan,
        **(tls or {}),
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("upstream did not start")
        time.sleep(0.01)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
