"""Real PostgreSQL and Redis for tests.

Outside CI a missing service skips the tests that need it, with the reason. With
``BASTION_TEST_REQUIRE_SERVICES=1`` (set by ``.ci/run``) a missing service fails them,
so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import secrets
import socket
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get(
    "BASTION_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE = os.environ.get("BASTION_TEST_REQUIRE_SERVICES") == "1"


def unavailable(
    service: str,
    reason: str,
    hint: str = "set BASTION_TEST_POSTGRES_URL / BASTION_TEST_REDIS_URL",
) -> None:
    message = f"{service} is not reachable ({reason})"
    if REQUIRE:
        pytest.fail(f"{message}; BASTION_TEST_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(f"{message}; {hint}")


def reachable(url: str) -> str | None:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 2):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def unique_name(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
