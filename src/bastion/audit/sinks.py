"""Where audit records go: a JSON-lines file, or memory (a test helper, public on purpose)."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import orjson


class AuditSink(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonLinesSink:
    """Appends one JSON object per line; lines from several processes do not interleave.

    The file is opened with O_APPEND and each record is written with one ``write``
    call, which POSIX makes atomic with respect to other appenders for regular files.
    """

    def __init__(self, path: Path, *, lazy: bool = False) -> None:
        self.path = path
        self._fd = -1
        self._closed = False
        self._lock = threading.Lock()
        # Opening at once makes an unwritable audit file fail the start, not a request;
        # lazily, a command that records nothing leaves nothing on disk.
        if not lazy:
            self._open()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record, default=str) + b"\n"
        with self._lock:
            if self._fd < 0 and not self._closed:
                self._open()
            os.write(self._fd, line)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


class MemorySink:
    """Keeps records in a list, for tests and for the console's recent-events view."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def close(self) -> None:
        return None

    def actions(self) -> list[str]:
        return [r["action"] for r in self.records]


class LoggingSink:
    """Writes each record as one JSON log line on the ``bastion.audit`` logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("bastion.audit")

    def write(self, record: dict[str, Any]) -> None:
        self._log.info("%s", orjson.dumps(record, default=str).decode())

    def close(self) -> None:
        return None
