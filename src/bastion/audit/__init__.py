"""Audit: typed events through one pipeline of processors (redaction first) into sinks."""

from bastion.audit.events import AuditEvent, Outcome
from bastion.audit.pipeline import AuditPipeline
from bastion.audit.redaction import REDACTED, redact
from bastion.audit.sinks import JsonLinesSink, MemorySink

__all__ = [
    "REDACTED",
    "AuditEvent",
    "AuditPipeline",
    "JsonLinesSink",
    "MemorySink",
    "Outcome",
    "redact",
]
