"""Step-up for resource servers: RFC 9470 (OAuth 2.0 Step Up Authentication Challenge).

A protected route states what it needs (a minimum ``acr``, a maximum authentication age);
``challenge`` checks a verified access token's claims and, when they fall short, gives the
``WWW-Authenticate`` value to send with a 401 so the app can ask for a new authorization
with ``acr_values`` and ``max_age`` (RFC 9470 §3, §4). The gateway uses this helper.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bastion.accounts.levels import rank, satisfies

ERROR = "insufficient_user_authentication"


@dataclass(frozen=True)
class Requirement:
    acr: str | None = None
    max_age: int | None = None

    def __post_init__(self) -> None:
        if self.acr is not None and rank(self.acr) == 0:
            raise ValueError(f"unknown acr value {self.acr!r}")
        if self.max_age is not None and self.max_age < 0:
            raise ValueError("max_age cannot be negative")


def _quoted(value: str) -> str:
    # RFC 9110 §11.2 quoted-string: escape backslash and double quote.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge_header(requirement: Requirement, description: str) -> str:
    """The ``WWW-Authenticate`` value of RFC 9470 §3."""
    parts = [f"error={_quoted(ERROR)}", f"error_description={_quoted(description)}"]
    if requirement.acr is not None:
        parts.append(f"acr_values={_quoted(requirement.acr)}")
    if requirement.max_age is not None:
        parts.append(f"max_age={_quoted(str(requirement.max_age))}")
    return "Bearer " + ", ".join(parts)


def challenge(claims: Mapping[str, Any], requirement: Requirement, now: float) -> str | None:
    """None when the token's authentication is enough; otherwise the header value."""
    if requirement.acr is not None and not satisfies(claims.get("acr"), requirement.acr):
        return challenge_header(requirement, "a stronger authentication is required")
    if requirement.max_age is not None:
        auth_time = claims.get("auth_time")
        if not isinstance(auth_time, int | float) or isinstance(auth_time, bool):
            return challenge_header(requirement, "the authentication time is unknown")
        if now - auth_time > requirement.max_age:
            return challenge_header(requirement, "a more recent authentication is required")
    return None
