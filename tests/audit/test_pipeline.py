"""The audit pipeline: redaction first, JSON lines out, one failing sink harms no other."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import orjson

from bastion.audit import AuditEvent, AuditPipeline, JsonLinesSink, MemorySink, Outcome
from bastion.clock import FixedClock


def test_events_are_written_as_redacted_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    pipeline = AuditPipeline([JsonLinesSink(path)], clock=FixedClock(1000.0))
    pipeline.emit(
        AuditEvent(
            "login.failed",
            Outcome.FAILURE,
            actor="alice",
            details={"password": "hunter2", "ip": "192.0.2.1"},
        )
    )
    pipeline.emit(AuditEvent("keys.rotate", Outcome.SUCCESS, target="kid1"))
    pipeline.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2
    first = orjson.loads(lines[0])
    assert first["at"] == 1000.0
    assert first["action"] == "login.failed"
    assert first["outcome"] == "failure"
    assert first["details"] == {"password": "[REDACTED]", "ip": "192.0.2.1"}
    assert b"hunter2" not in path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_redaction_cannot_be_bypassed_by_later_processors() -> None:
    seen: list[dict[str, Any]] = []

    def spy(record: dict[str, Any]) -> dict[str, Any]:
        seen.append(record)
        return record

    sink = MemorySink()
    AuditPipeline([sink], processors=[spy]).emit(
        AuditEvent("x", Outcome.SUCCESS, details={"token": "abc"})
    )
    assert seen[0]["details"]["token"] == "[REDACTED]"
    assert sink.actions() == ["x"]


def test_a_failing_sink_does_not_stop_the_others() -> None:
    class Broken:
        def write(self, record: dict[str, Any]) -> None:
            raise OSError("disk full")

        def close(self) -> None:
            return None

    good = MemorySink()
    AuditPipeline([Broken(), good]).emit(AuditEvent("y", Outcome.DENIED))
    assert good.actions() == ["y"]
