"""The statements the SQL stores make, one line each: a row as a record, rows as records,
a value, a statement's row count, and an insert that leaves an existing row alone.

Every call on ``Rows`` is a transaction of its own. A method whose statements must
commit together says so, and makes the same calls on what ``transaction()`` yields::

    async with self._rows.transaction() as tx:
        ids = await tx.values(select(table.c.id).where(condition))
        await tx.run(update(table).where(condition).values(revoked_at=now))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Executable

from bastion.store.sql.database import Database

Record = TypeVar("Record")


class Row(Protocol):
    """A row by column name: SQLAlchemy's ``RowMapping`` or ``sqlite3.Row``."""

    def __getitem__(self, key: str, /) -> Any: ...


class Rows:
    def __init__(self, database: Database, connection: AsyncConnection | None = None) -> None:
        self._database = database
        self._connection = connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Rows]:
        """Calls on the yielded ``Rows`` share one transaction, committed on success (or
        the transaction this ``Rows`` is already in)."""
        async with self._connect() as connection:
            yield Rows(self._database, connection)

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        if self._connection is not None:
            yield self._connection
            return
        async with self._database.connect() as connection:
            yield connection

    async def one(
        self, statement: Executable, record: Callable[[RowMapping], Record]
    ) -> Record | None:
        """The first row the statement selects, as a record; None when there is none."""
        async with self._connect() as connection:
            row = (await connection.execute(statement)).mappings().first()
        return None if row is None else record(row)

    async def all(
        self, statement: Executable, record: Callable[[RowMapping], Record]
    ) -> list[Record]:
        async with self._connect() as connection:
            return [record(row) for row in (await connection.execute(statement)).mappings()]

    async def value(self, statement: Executable) -> Any:
        """The first column of the first row; None when there is no row."""
        async with self._connect() as connection:
            return await connection.scalar(statement)

    async def values(self, statement: Executable) -> list[Any]:
        """The first column of every row."""
        async with self._connect() as connection:
            return list((await connection.execute(statement)).scalars())

    async def run(
        self, statement: Executable, parameters: Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        """Execute (once per parameter set, if given); the number of rows it matched."""
        async with self._connect() as connection:
            return (await connection.execute(statement, parameters)).rowcount

    async def insert_new(self, table: Table, **values: Any) -> bool:
        """Insert unless the row would break a unique key; True when this call inserted.

        ``ON CONFLICT DO NOTHING`` rather than catching the integrity error, because on
        PostgreSQL that error ends the surrounding transaction.
        """
        dialect = postgresql if self._database.dialect == "postgresql" else sqlite
        return bool(await self.run(dialect.insert(table).values(**values).on_conflict_do_nothing()))
