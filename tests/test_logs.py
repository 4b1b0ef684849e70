"""Log lines are redacted on every handler: messages, arguments, tracebacks, access logs."""

from __future__ import annotations

import io
import logging
import logging.config

import pytest

from bastion.logs import RedactingFilter, uvicorn_log_config

SECRET = "opaqueS3cretValue42"  # not JWT-shaped: the by-name rules must catch it


@pytest.fixture
def captured() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redacting")
    logger.handlers[:] = [handler]
    logger.propagate = False
    return logger, stream


def uvicorn_access_log() -> tuple[logging.Logger, io.StringIO]:
    """uvicorn's access logger as ``bastion serve`` configures it, writing to a buffer."""
    logging.config.dictConfig(uvicorn_log_config())
    access = logging.getLogger("uvicorn.access")
    stream = io.StringIO()
    handler = access.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return access, stream


def test_message_and_arguments(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.warning("upstream said Authorization: Bearer %s", SECRET)
    logger.warning("callback %s", f"/cb?state=1&code={SECRET}")
    logger.warning("fields %(password)s", {"password": SECRET})
    assert SECRET not in stream.getvalue()
    assert "state=1" in stream.getvalue()


def test_tracebacks(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise ValueError(f"upstream refused client_secret={SECRET}")
    except ValueError:
        logger.exception("failed")
    assert "ValueError" in stream.getvalue()
    assert SECRET not in stream.getvalue()


def test_uvicorn_access_log_keeps_working_and_redacts() -> None:
    """Uvicorn's access formatter unpacks five positional args; redaction must keep them."""
    access, stream = uvicorn_access_log()
    access.info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/cb?access_token={SECRET}", "1.1", 200
    )
    line = stream.getvalue()
    assert '"GET /cb?access_token=[REDACTED] HTTP/1.1" 200' in line


@pytest.mark.parametrize("path", ["/token", "/oauth/basic", "/api/bearer", "/x" * 3000])
def test_access_log_lines_survive_any_path(path: str) -> None:
    """uvicorn's formatter unpacks five arguments; a match spanning two of them (e.g.
    "/token" then "HTTP/1.1") must not cost us the line."""
    access, stream = uvicorn_access_log()
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "POST", path, "1.1", 200)
    assert f'"POST {path[:100]}' in stream.getvalue()
    assert "Logging error" not in stream.getvalue()


def test_malformed_records_never_raise(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.warning("%(x)s", {"y": 1})
    logger.warning("%c", 2**40)
    assert stream.getvalue().count("\n") == 2


def test_long_tracebacks_keep_their_cause(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured

    def deep(n: int) -> None:
        if n == 0:
            raise RuntimeError(f"THE REAL CAUSE password={SECRET}")
        deep(n - 1)

    try:
        deep(120)
    except RuntimeError:
        logger.exception("failed")
    assert "THE REAL CAUSE" in stream.getvalue()
    assert SECRET not in stream.getvalue()


def test_mapping_arguments_keep_their_types(captured: tuple[logging.Logger, io.StringIO]) -> None:
    from pathlib import Path

    logger, stream = captured
    logger.warning("file %(path)s took %(ms).1f ms", {"path": Path("/x"), "ms": 1.25})
    assert "file /x took 1.2 ms" in stream.getvalue()
