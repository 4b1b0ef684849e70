"""Logging set-up: every handler redacts, so no log line carries a token or secret.

The filter rewrites a record in place: the formatted message, the traceback and the
stack. ``extra=`` fields are not inspected, so never pass secrets that way.
"""

from __future__ import annotations

import copy
import logging
import logging.config
from collections.abc import Mapping
from typing import Any

from bastion.audit.redaction import REDACTED, is_sensitive, redact_text

_FORMAT = "%(levelname)s %(name)s: %(message)s"


# Loggers whose formatter unpacks ``record.args`` by position (uvicorn's access log):
# their arguments are redacted one by one and the tuple keeps its shape.
POSITIONAL_LOGGERS = frozenset({"uvicorn.access"})
MAX_MESSAGE = 16_384
MAX_TRACEBACK = 65_536


class RedactingFilter(logging.Filter):
    """Redacts a record in place; never raises into the code that logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._redact(record)
        except Exception:
            record.msg, record.args = "[unloggable record: redaction failed]", ()
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True

    def _redact(self, record: logging.LogRecord) -> None:
        if isinstance(record.args, Mapping):
            # "%(password)s" with {"password": ...}: the name is only in the mapping.
            record.args = {
                k: REDACTED if is_sensitive(str(k)) else v for k, v in record.args.items()
            }
        if record.name in POSITIONAL_LOGGERS and isinstance(record.args, tuple):
            record.args = tuple(redact_text(a) if isinstance(a, str) else a for a in record.args)
        else:
            try:
                message = record.getMessage()
            except Exception:  # a malformed format: log what we were given
                message, record.args = str(record.msg), ()
            redacted = redact_text(message, limit=MAX_MESSAGE)
            if redacted != message:
                record.msg, record.args = redacted, ()
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact_text(text, limit=MAX_TRACEBACK)
            # Formatters that format exc_info themselves must not see the raw text.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, limit=MAX_TRACEBACK)


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
