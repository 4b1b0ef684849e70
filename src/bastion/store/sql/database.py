"""The database handle: engine, reachability, schema revision, migrations.

Connection failures are translated to ``StoreUnavailable("database", ...)`` here, so
callers above never see a driver's exception type. The pool checks a connection
before handing it out, so service resumes by itself after the server comes back.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bastion.audit.redaction import redact_text
from bastion.errors import SchemaNotCurrent, StoreUnavailable
from bastion.store.sql.sqlite_files import create_private_database, database_path

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x6261_7374_696F_6E  # "bastion": one advisory lock id for migrations

# Errors that mean "cannot talk to the server" rather than "the query was wrong".
_UNREACHABLE = (OperationalError, InterfaceError, OSError, ConnectionError, asyncio.TimeoutError)


def _is_unreachable(exc: BaseException) -> bool:
    if isinstance(exc, _UNREACHABLE):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _reason(exc: BaseException) -> str:
    """The driver's own words, for operators: redacted, and short."""
    cause = getattr(exc, "orig", None) or exc
    detail = redact_text(str(cause).splitlines()[0] if str(cause) else "", limit=200)
    return f"{type(cause).__name__}: {detail}" if detail else type(cause).__name__


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        self._timeout = connect_timeout
        # A server may restart under us, so PostgreSQL connections are checked before use;
        # an SQLite file cannot go away that way, and the check would double its statements.
        kwargs: dict[str, Any] = {"pool_pre_ping": self.dialect != "sqlite"}
        if self.dialect == "sqlite":
            path = database_path(url)
            if path is not None:
                create_private_database(path)
            kwargs["connect_args"] = {"timeout": connect_timeout}
        else:
            kwargs |= {
                "pool_size": pool_size,
                "max_overflow": pool_size,
                "pool_timeout": connect_timeout,
                "connect_args": {"timeout": connect_timeout, "command_timeout": 30},
            }
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    @property
    def safe_url(self) -> str:
        """The URL for messages: no password, in the userinfo or in the query string."""
        return redact_text(make_url(self.url).render_as_string(hide_password=True))

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed on success.

        Any failure to obtain the connection means the store cannot serve (refused,
        unknown database, wrong credentials, server starting up or out of slots), so it
        is ``StoreUnavailable``; once connected, only disconnects are.
        """
        connected = False
        try:
            async with self.engine.begin() as conn:
                connected = True
                yield conn
        except Exception as exc:
            if not connected or _is_unreachable(exc):
                raise StoreUnavailable("database", _reason(exc)) from exc
            raise

    async def ping(self) -> None:
        try:
            async with asyncio.timeout(self._timeout), self.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except TimeoutError as exc:
            raise StoreUnavailable("database", "no answer in time") from exc

    async def current_revision(self) -> str | None:
        async with self.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )

    def head_revision(self) -> str:
        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        assert head is not None
        return head

    async def require_current_schema(self) -> None:
        current, head = await self.current_revision(), self.head_revision()
        if current != head:
            state = "empty (never migrated)" if current is None else f"at revision {current}"
            raise SchemaNotCurrent(
                f"the database schema is {state}, this Bastion needs revision {head}: "
                "run `bastion db upgrade`"
            )

    def pending_revisions(self, current: str | None) -> list[str]:
        scripts = ScriptDirectory.from_config(_alembic_config())
        revisions = list(scripts.iterate_revisions("head", current or "base"))
        return [r.revision for r in reversed(revisions)]

    async def upgrade(self, on_step: Callable[[str], None] | None = None) -> list[str]:
        """Apply every pending migration under a lock; return the revisions applied.

        Several processes may run this at once (every replica's start script, say): the
        first takes the lock and migrates, the others wait and then find nothing to do.
        """
        applied: list[str] = []

        def step(revision: str) -> None:
            applied.append(revision)
            if on_step is not None:
                on_step(revision)

        async with self._migration_lock(), self.connect() as conn:
            if self.dialect == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            await conn.run_sync(_upgrade_to_head, step)
        return applied

    @asynccontextmanager
    async def _migration_lock(self) -> AsyncIterator[None]:
        """SQLite has no advisory locks, and it serves one machine: lock a file beside it."""
        path = make_url(self.url).database
        if self.dialect != "sqlite" or not path or path == ":memory:":
            yield
            return
        fd = os.open(f"{path}.migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    async def close(self) -> None:
        await self.engine.dispose()


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade_to_head(connection: Connection, on_step: Callable[[str], None]) -> None:
    config = _alembic_config(connection)
    config.attributes["on_step"] = on_step
    command.upgrade(config, "head")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run while a writer commits; foreign keys are off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
