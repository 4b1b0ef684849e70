"""The audit event: who did what, under which policy, with what outcome."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


@dataclass(frozen=True)
class AuditEvent:
    """One security decision.

    ``action`` is a dotted name owned by the area that emits it (``keys.rotate``,
    ``config.refused``); ``details`` is free-form and always passes redaction.
    """

    action: str
    outcome: Outcome
    actor: str = "system"
    target: str | None = None
    policy: str | None = None
    correlation_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_record(self, at: float) -> dict[str, Any]:
        return {
            "at": at,
            "action": self.action,
            "outcome": str(self.outcome),
            "actor": self.actor,
            "target": self.target,
            "policy": self.policy,
            "correlation_id": self.correlation_id,
            "details": dict(self.details),
        }
