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
from alembic.util.exc import CommandError
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bastion.audit.redaction import redact_text
from bastion.errors import SchemaNotCurrent, StoreUnavailable
from bastion.store.sql.direct import DirectSqlite, Synchronous, wal_size_limit
from bastion.store.sql.direct_postgres import DirectPostgres, driver_reason
from bastion.store.sql.sqlite_files import create_private_database, database_path

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x6261_7374_696F_6E  # "bastion": one advisory lock id for migrations

# Errors that mean "cannot talk to the server" rather than "the query was wrong".
_UNREACHABLE = (OperationalError, InterfaceError, OSError, ConnectionError, asyncio.TimeoutError)


def _is_unreachable(exc: BaseException) -> bool:
    if isinstance(exc, _UNREACHABLE):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class Database:
    """An SQLite file or a PostgreSQL database.

    ``create=False`` opens an SQLite database only if its file exists: a missing file
    reads as a database without a schema, and nothing is created on disk, so that a
    command pointed at the wrong place leaves no stray database behind. Only migrating
    needs ``create=True``.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        create: bool = True,
        synchronous: Synchronous = "normal",
    ) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        self._timeout = connect_timeout
        self._file = database_path(url) if self.dialect == "sqlite" else None
        self._create = create
        self.synchronous: Synchronous = synchronous
        self._direct: DirectSqlite | None = None
        self.postgres: DirectPostgres | None = None
        # A server may restart under us, so PostgreSQL connections are checked before use;
        # an SQLite file cannot go away that way, and the check would double its statements.
        kwargs: dict[str, Any] = {"pool_pre_ping": self.dialect != "sqlite"}
        if self.dialect == "sqlite":
            if self._file is not None and create:
                create_private_database(self._file)
            kwargs["connect_args"] = {"timeout": connect_timeout}
        else:
            kwargs |= {
                "pool_size": pool_size,
                "max_overflow": pool_size,
                "pool_timeout": connect_timeout,
                "connect_args": {"timeout": connect_timeout, "command_timeout": 30},
            }
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.dialect == "postgresql":
            # The token endpoint's statements, on asyncpg directly (``direct_postgres.py``);
            # its pool is this process's own, beside the engine's.
            _, connect_args = self.engine.dialect.create_connect_args(self.engine.url)
            for option in ("prepared_statement_cache_size", "prepared_statement_name_func"):
                connect_args.pop(option, None)  # SQLAlchemy's own, not asyncpg's
            self.postgres = DirectPostgres(
                connect_args, pool_size=pool_size, timeout=connect_timeout
            )
        if self.dialect == "sqlite":
            event.listen(
                self.engine.sync_engine,
                "connect",
                lambda dbapi_connection, _record: _sqlite_pragmas(dbapi_connection, synchronous),
            )

    @property
    def direct(self) -> DirectSqlite | None:
        """The SQLite file's direct connection for the token endpoint's short statements
        (``direct.py``); None for PostgreSQL, and while the file does not exist."""
        if self._direct is None:
            if self._file is None or self.missing:
                return None
            self._direct = DirectSqlite(
                self._file, timeout=self._timeout, synchronous=self.synchronous
            )
        return self._direct

    @property
    def safe_url(self) -> str:
        """The URL for messages: no password, in the userinfo or in the query string."""
        return redact_text(make_url(self.url).render_as_string(hide_password=True))

    @property
    def name(self) -> str:
        """The database for people: an SQLite file's path, else the URL without secrets."""
        if self._file is not None:
            return f"SQLite database {self._file}"
        return f"database {self.safe_url}"

    @property
    def missing(self) -> bool:
        """An SQLite file that does not exist and that this handle may not create."""
        return self._file is not None and not self._create and not self._file.exists()

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed on success.

        Any failure to obtain the connection means the store cannot serve (refused,
        unknown database, wrong credentials, server starting up or out of slots), so it
        is ``StoreUnavailable``; once connected, only disconnects are.
        """
        if self.missing:
            raise StoreUnavailable("database", f"{self.name} does not exist")
        connected = False
        try:
            async with self.engine.begin() as conn:
                connected = True
                yield conn
        except Exception as exc:
            if not connected or _is_unreachable(exc):
                raise StoreUnavailable("database", driver_reason(exc)) from exc
            raise

    async def ping(self) -> None:
        try:
            async with asyncio.timeout(self._timeout), self.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except TimeoutError as exc:
            raise StoreUnavailable("database", "no answer in time") from exc

    async def current_revision(self) -> str | None:
        if self.missing:
            return None
        async with self.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )

    def head_revision(self) -> str:
        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        assert head is not None
        return head

    async def require_current_schema(self) -> None:
        problem = self.schema_problem(await self.current_revision())
        if problem is not None:
            raise SchemaNotCurrent(problem)

    def schema_problem(self, current: str | None) -> str | None:
        """Why a schema at ``current`` will not do, naming the database; None if it will."""
        head = self.head_revision()
        if current == head:
            return None
        if self.missing:
            state = f"{self.name} does not exist (nothing was created)"
        elif current is None:
            state = f"{self.name} has no schema (never migrated)"
        elif not self._knows(current):
            return (
                f"{self.name} is at revision {current}, which this Bastion does not know "
                f"(it needs revision {head}): a newer Bastion migrated it; run that version"
            )
        else:
            pending = len(self.pending_revisions(current))
            state = f"{self.name} is at revision {current}, {pending} migration(s) behind"
        return f"{state}; this Bastion needs revision {head}: run `bastion db upgrade`"

    def _knows(self, revision: str) -> bool:
        try:
            ScriptDirectory.from_config(_alembic_config()).get_revision(revision)
        except CommandError:
            return False
        return True

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
        if self._direct is not None:
            self._direct.close()
            self._direct = None
        if self.postgres is not None:
            await self.postgres.close()
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


def _sqlite_pragmas(dbapi_connection: Any, synchronous: Synchronous) -> None:
    # WAL lets readers run while a writer commits; foreign keys are off by default.
    # synchronous=NORMAL in WAL mode: a commit survives a crash of the process (it is in
    # the WAL, in the OS's page cache), not a power loss; FULL fsyncs every commit.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # The same bound on the log file as the token endpoint's connections (direct.py): any
    # connection's commit may be the first one in a restarted log.
    cursor.execute("PRAGMA page_size")
    limit = wal_size_limit(cursor.fetchone()[0])
    cursor.execute(f"PRAGMA journal_size_limit={limit}")
    cursor.close()
