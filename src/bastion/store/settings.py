"""The ``[database]`` and ``[hot_state]`` tables: where durable and short-lived state live.

A URL with a password belongs in ``BASTION_DATABASE_URL`` or ``BASTION_REDIS_URL``
(docs/configuration.md#secrets); production refuses one written in the file.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bastion.configtypes import Duration, RefusedInProduction, Section


def normalise_database_url(value: str) -> str:
    """Accept plain driver names and pin the async drivers Bastion ships with."""
    try:
        url = make_url(value)
    except ArgumentError as exc:
        raise ValueError("not a database URL") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    elif backend == "postgresql":
        url = url.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError("database URL must be sqlite:// or postgresql://")
    return url.render_as_string(hide_password=False)


def check_redis_url(value: str) -> str:
    if not re.match(r"^(redis|rediss|unix)://", value):
        raise ValueError("hot state URL must start with redis://, rediss:// or unix://")
    try:
        urlsplit(value).port  # noqa: B018 - raises on a malformed host or port
    except ValueError as exc:
        raise ValueError("hot state URL is not a valid URL") from exc
    return value


def has_password(url: str | None) -> bool:
    """A password in the userinfo or in the query string (asyncpg and redis-py read both)."""
    if url is None:
        return False
    try:
        parts = urlsplit(url)
        if parts.password:
            return True
    except ValueError:
        return False  # the URL's own validator reports it
    return any(name.lower() == "password" for name, _ in parse_qsl(parts.query))


class DatabaseSettings(Section):
    url: Annotated[
        str | None,
        RefusedInProduction(
            has_password, "contains a password; pass the URL in BASTION_DATABASE_URL"
        ),
    ] = Field(None, description="SQLAlchemy URL; default: SQLite file bastion.db in data_dir")
    pool_size: int = Field(10, ge=1, le=200)
    connect_timeout: Duration = 5.0
    # How often a served process deletes expired rows (0: never; `bastion db prune`).
    prune_interval: Duration = Field(600.0, ge=0)
    # SQLite only. "normal": a commit survives the process crashing (WAL, no fsync per
    # commit); "full": it also survives a power loss (fsync per commit), at a cost.
    sqlite_synchronous: Literal["normal", "full"] = "normal"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else normalise_database_url(value)


class HotStateSettings(Section):
    url: Annotated[
        str | None,
        RefusedInProduction(has_password, "contains a password; pass the URL in BASTION_REDIS_URL"),
    ] = Field(None, description="redis:// or rediss:// URL; default: in memory")
    connect_timeout: Duration = 2.0
    key_prefix: str = Field("bastion:", min_length=1, max_length=64)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_redis_url(value)
