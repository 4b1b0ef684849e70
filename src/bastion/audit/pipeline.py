"""The one audit pipeline: event -> record -> processors (redaction first) -> sinks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from bastion.audit.events import AuditEvent
from bastion.audit.redaction import redact
from bastion.audit.sinks import AuditSink
from bastion.clock import Clock, SystemClock

Processor = Callable[[dict[str, Any]], dict[str, Any]]
log = logging.getLogger("bastion.audit")


def redaction_processor(record: dict[str, Any]) -> dict[str, Any]:
    redacted: dict[str, Any] = redact(record)
    return redacted


class AuditPipeline:
    """Emitting never raises: a failing sink is logged, and the other sinks still get the record.

    Redaction always runs first, and cannot be removed: processors passed in run after it.
    """

    def __init__(
        self,
        sinks: Sequence[AuditSink],
        processors: Sequence[Processor] = (),
        clock: Clock | None = None,
    ) -> None:
        self._sinks = list(sinks)
        self._processors: list[Processor] = [redaction_processor, *processors]
        self._clock = clock or SystemClock()

    def emit(self, event: AuditEvent) -> None:
        record = event.to_record(self._clock.now())
        for processor in self._processors:
            record = processor(record)
        for sink in self._sinks:
            try:
                sink.write(record)
            except Exception:
                log.exception("audit sink %s failed", type(sink).__name__)

    def close(self) -> None:
        for sink in self._sinks:
            sink.close()
