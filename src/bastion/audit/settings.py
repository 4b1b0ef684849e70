"""The ``[audit]`` table: where the audit trail is written."""

from __future__ import annotations

from pydantic import Field

from bastion.configtypes import AnchoredPath, Section


class AuditSettings(Section):
    path: AnchoredPath | None = Field(
        None, description="JSON-lines file; default data_dir/audit.jsonl"
    )
    stderr: bool = False
