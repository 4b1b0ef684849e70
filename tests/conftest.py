"""Fixtures shared by every test: real stores, settings, a built app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from bastion.clock import FixedClock
from bastion.config import Settings, encode_master_key, load_settings
from bastion.store.memory.hot import MemoryHotStore
from bastion.store.protocols import HotStore
from bastion.store.redis.hot import RedisHotStore
from bastion.store.sql.database import Database
from tests.support.recorder import Recorder
from tests.support.services import (
    POSTGRES_URL,
    REDIS_URL,
    reachable,
    unavailable,
    unique_name,
)
from tests.support.tcpproxy import TcpProxy, proxy_to

# The machines tests run on are shared and noisy: a property is judged by its examples,
# never by how long one took to generate or run.
hypothesis_settings.register_profile(
    "shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("shared-machine")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    if (reason := reachable(POSTGRES_URL)) is not None:
        unavailable("PostgreSQL", reason)
    name = unique_name("bastion_test")
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    yield _with_database(POSTGRES_URL, name).replace("postgresql://", "postgresql+asyncpg://", 1)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_url() -> str:
    if (reason := reachable(REDIS_URL)) is not None:
        unavailable("Redis", reason)
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'bastion.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    yield db
    await db.close()


@pytest.fixture
async def migrated(database: Database) -> Database:
    await database.upgrade()
    return database


@pytest.fixture(params=["memory", "redis"])
async def hot_store(request: pytest.FixtureRequest) -> AsyncIterator[HotStore]:
    store: HotStore
    if request.param == "memory":
        store = MemoryHotStore()
    else:
        url = request.getfixturevalue("redis_url")
        store = RedisHotStore(url, prefix=f"{unique_name('test')}:")
    yield store
    await store.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def master_key_b64() -> str:
    import secrets

    return encode_master_key(secrets.token_bytes(32))


def write_config(directory: Path, body: str = "") -> Path:
    path = directory / "bastion.toml"
    path.write_text(f'data_dir = "data"\n{body}', encoding="utf-8")
    return path


@pytest.fixture
def settings(tmp_path: Path, master_key_b64: str) -> Settings:
    """Development settings in a temporary directory, with an explicit master key."""
    return load_settings(write_config(tmp_path), {"BASTION_MASTER_KEY": master_key_b64})


@pytest.fixture
def proxies(postgres_url: str, redis_url: str) -> Iterator[tuple[TcpProxy, TcpProxy]]:
    """TCP proxies in front of PostgreSQL and Redis that a test can cut and restore."""
    database, hot = proxy_to(postgres_url), proxy_to(redis_url)
    yield database, hot
    database.close()
    hot.close()


@pytest.fixture
def now() -> FixedClock:
    """A clock the test moves; it starts at the wall time so upstreams see sane dates."""
    return FixedClock(time.time())


@pytest.fixture
def environ(master_key_b64: str) -> dict[str, str]:
    return {"BASTION_MASTER_KEY": master_key_b64}


@pytest.fixture
def recorder() -> Recorder:
    """An upstream that records what reaches it (tests.support.recorder)."""
    return Recorder()
