"""Short statements on PostgreSQL without SQLAlchemy: the token endpoint's path.

Through SQLAlchemy's async engine every call was six round trips to the server: the
pool's pre-ping (``BEGIN``, a ping, ``ROLLBACK``) and the statement inside its own
``BEGIN`` ... ``COMMIT``. A code exchange made 16 of them, a refresh 19, an
introspection 6, and each is a wake-up of the event loop and of a server backend, in
every worker. Here every call is one statement on an asyncpg pool of this process,
outside any explicit transaction, so one round trip:

* the statement is prepared once per connection (asyncpg's statement cache) and then
  only bound and executed;
* writes that must commit together are one statement (data-modifying ``WITH``
  clauses), which PostgreSQL runs as one transaction: atomic without ``BEGIN`` and
  ``COMMIT`` on the wire, and settled by row locks like any ``UPDATE ... WHERE``;
* the statements are the SQLite path's own text (``:name`` parameters), numbered once
  here for PostgreSQL (``$1``, ``$2``, ...).

No pre-ping: a connection that died with the server (a restart, a failover) is
noticed by the statement that uses it. All of the pool's connections are then replaced
on their next use; a read is run once more on a fresh connection (it wrote nothing), a
write is ``StoreUnavailable`` (whether it committed is unknown, and each of these writes
is conditional, so a client's retry is refused or applied once, never twice).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from bastion.audit.redaction import redact_text
from bastion.errors import ConnectionLost, StoreUnavailable

# The driver's errors that mean "no answer from the server" rather than "a wrong query".
_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.OperatorInterventionError,
)
# Of those, the ones that say nothing about the connections already open: a busy pool or
# server (no connection free in time, no slot left), not a lost server.
_BUSY = (TimeoutError, asyncpg.TooManyConnectionsError)
# A parameter ``:name``, not the second colon of a ``::type`` cast.
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@dataclass(frozen=True)
class Statement:
    """A statement with ``:name`` parameters, numbered for asyncpg."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, sql: str) -> Statement:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match[1] not in names:
                names.append(match[1])
            return f"${names.index(match[1]) + 1}"

        return cls(_PARAMETER.sub(number, sql), tuple(names))

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[name] for name in self.names]


class DirectPostgres:
    """One asyncpg pool per process and event loop (``bastion serve --workers N``
    starts N processes, each with its own pool of at most ``pool_size`` connections)."""

    def __init__(self, connect_args: Mapping[str, Any], *, pool_size: int, timeout: float) -> None:
        self._connect_args = dict(connect_args)
        self._pool_size = pool_size
        self._timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _current_pool(self) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            # A pool belongs to the loop it was made on (a test's loop, a served one).
            if self._pool is not None:
                self._pool.terminate()
            self._pool, self._loop = None, loop
            pool = asyncpg.create_pool(
                **self._connect_args,
                min_size=0,  # connect on demand: an idle process holds no connection
                max_size=self._pool_size,
                timeout=self._timeout,
                command_timeout=30,
                reset=_keep_session,
            )
            self._pool = await pool
        return self._pool

    async def fetchrow(self, statement: Statement, values: Mapping[str, Any]) -> Any:
        """The first row a read selects (a record by column name), or None. Run once more
        on a fresh connection if the first one turns out dead: it wrote nothing."""
        try:
            return await self._fetchrow(statement, values)
        except ConnectionLost:
            return await self._fetchrow(statement, values)

    async def write(self, statement: Statement, values: Mapping[str, Any]) -> Any:
        """One statement, committed when this returns: its first row (a ``RETURNING`` or
        final ``SELECT``), or None when it returns none."""
        return await self._fetchrow(statement, values)

    async def _fetchrow(self, statement: Statement, values: Mapping[str, Any]) -> Any:
        pool = await self._current_pool()
        try:
            async with pool.acquire(timeout=self._timeout) as conn:
                return await conn.fetchrow(statement.sql, *statement.args(values))
        except _BUSY as exc:
            raise StoreUnavailable("database", driver_reason(exc)) from exc
        except _UNREACHABLE as exc:
            # The server went away for every connection opened before: open new ones.
            await pool.expire_connections()
            raise ConnectionLost("database", driver_reason(exc)) from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if self._loop is asyncio.get_running_loop():
            try:
                await asyncio.wait_for(pool.close(), self._timeout)
                return
            except (TimeoutError, *_UNREACHABLE):
                pass
        pool.terminate()


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """Nothing to undo on a connection given back to the pool: these statements set no
    session state, take no advisory lock, open no cursor and listen to nothing. asyncpg's
    default reset would spend a round trip on every release saying so (an open
    transaction, which these never leave, is still rolled back by asyncpg first)."""


def driver_reason(exc: BaseException) -> str:
    """The driver's own words, for operators: redacted, and short (SQLAlchemy's wrapper
    gives way to the driver's exception it wraps)."""
    cause = getattr(exc, "orig", None) or exc
    detail = redact_text(str(cause).splitlines()[0] if str(cause) else "", limit=200)
    return f"{type(cause).__name__}: {detail}" if detail else type(cause).__name__
