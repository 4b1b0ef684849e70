"""Logging set-up: every handler redacts, so no log line carries a token or secret.

The filter rewrites a record in place (message, each argument, the formatted
traceback) and keeps the argument tuple's shape, because some formatters, such as
uvicorn's access log, unpack ``record.args`` positionally.
"""

from __future__ import annotations

import copy
import logging
import logging.config
from collections.abc import Mapping
from typing import Any

from bastion.audit.redaction import redact, redact_text

_FORMAT = "%(levelname)s %(name)s: %(message)s"


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):
            # "%(password)s" with {"password": ...}: the name is only in the mapping.
            record.args = redact(record.args)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed format: log what we were given
            message = str(record.msg)
            record.args = ()
        if redact_text(message) != message:
            self._redact_message(record, message)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        return True

    @staticmethod
    def _redact_message(record: logging.LogRecord, message: str) -> None:
        # Prefer redacting the arguments alone, which keeps their shape for formatters
        # that unpack them; fall back to the redacted text when the secret is elsewhere.
        if isinstance(record.args, tuple) and record.args:
            args = tuple(redact_text(a) if isinstance(a, str) else a for a in record.args)
            try:
                candidate = str(record.msg) % args
            except (TypeError, ValueError):
                candidate = message
            if redact_text(candidate) == candidate:
                record.args = args
                return
        record.msg = redact_text(message)
        record.args = ()


def configure(level: int = logging.INFO) -> None:
    """Root logging for the CLI: one stderr handler that redacts."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic narrates every connection it configures; our own messages say what matters.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def uvicorn_log_config() -> dict[str, Any]:
    """Uvicorn's own logging configuration with the redacting filter on every handler.

    Its access log prints the request target, query string included, where an
    authorization code or a misplaced token would otherwise land.
    """
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": f"{__name__}.RedactingFilter"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    return config
