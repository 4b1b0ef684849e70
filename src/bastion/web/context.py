"""Per-request context that middleware and handlers share through the ASGI scope."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.types import Scope


def new_correlation_id() -> str:
    return secrets.token_hex(12)


def correlation_id(scope: Scope) -> str | None:
    state: dict[str, Any] = scope.get("state") or {}
    value = state.get("correlation_id")
    return value if isinstance(value, str) else None
