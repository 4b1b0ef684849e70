"""Request parameters as OAuth reads them (RFC 6749 §3.1, §3.2)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from bastion.errors import OAuthError

# RFC 8707 §2: "resource" may be sent more than once; nothing else may.
REPEATABLE = frozenset({"resource"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_VALUE = 4096


class Params:
    """Single-valued parameters, with ``resource`` as the one allowed list."""

    def __init__(self, values: dict[str, str], resources: tuple[str, ...]) -> None:
        self._values = values
        self.resources = resources

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def require(self, name: str) -> str:
        value = self._values.get(name)
        if value is None:
            raise OAuthError("invalid_request", f"{name} is required")
        return value

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def names(self) -> frozenset[str]:
        return frozenset(self._values)


def parse(pairs: Iterable[tuple[str, str]]) -> Params:
    """Parameters sent twice are ``invalid_request`` (RFC 6749 §3.1: "MUST NOT be included
    more than once"); empty values count as omitted (same section)."""
    values: dict[str, str] = {}
    resources: list[str] = []
    seen: set[str] = set()
    for name, value in pairs:
        if len(value) > MAX_VALUE:
            raise OAuthError("invalid_request", f"{_safe(name)} is too long")
        if _CONTROL.search(name) or _CONTROL.search(value):
            # No OAuth parameter contains control characters; NUL in particular cannot be
            # stored by PostgreSQL and has truncated strings in C-based components.
            raise OAuthError("invalid_request", f"{_safe(name)} contains control characters")
        if name in REPEATABLE:
            if value:
                resources.append(value)
            continue
        if name in seen:
            raise OAuthError("invalid_request", f"{_safe(name)} was sent more than once")
        seen.add(name)
        if value:
            values[name] = value
    return Params(values, tuple(resources))


def _safe(name: str) -> str:
    """A parameter name fit to echo in an error description."""
    cleaned = "".join(ch for ch in name[:40] if ch.isalnum() or ch in "_-.")
    return cleaned or "a parameter"


def scopes(value: str | None) -> tuple[str, ...]:
    """RFC 6749 §3.3: space-delimited, case-sensitive, order-insensitive; duplicates dropped."""
    if not value:
        return ()
    seen: dict[str, None] = {}
    for token in value.split(" "):
        if token:
            if not all(0x21 <= ord(c) <= 0x7E and c not in '"\\' for c in token):
                raise OAuthError("invalid_scope", "scope contains invalid characters")
            seen[token] = None
    return tuple(seen)
