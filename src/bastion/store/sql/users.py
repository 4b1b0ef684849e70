"""User accounts in SQL (``bastion.accounts.stores.UserStore``)."""

from __future__ import annotations

import secrets
import sqlite3

from sqlalchemy import delete, select, update
from sqlalchemy.sql.elements import ColumnElement

from bastion.accounts.records import User
from bastion.errors import UserExists
from bastion.store.sql.database import Database
from bastion.store.sql.direct_postgres import Statement
from bastion.store.sql.rows import Row, Rows
from bastion.store.sql.schema import users

_SELECT_USER = "SELECT * FROM users WHERE user_id = :user_id"
_SELECT_USER_STATE = "SELECT enabled, tokens_valid_after FROM users WHERE user_id = :user_id"
_PG_SELECT_USER = Statement.of(_SELECT_USER)
_PG_SELECT_USER_STATE = Statement.of(_SELECT_USER_STATE)


def _user(row: Row) -> User:
    return User(
        row["user_id"],
        row["username"],
        bool(row["enabled"]),
        row["created_at"],
        row["tokens_valid_after"],
        row["password_hash"],
        row["auth_policy"],
    )


class SqlUserStore:
    def __init__(self, database: Database) -> None:
        self._rows = Rows(database)
        self._database = database

    async def create(self, username: str, password_hash: str | None, now: float) -> User:
        user = User(secrets.token_hex(16), username, True, now, 0.0, password_hash)
        if not await self._rows.insert_new(
            users,
            user_id=user.user_id,
            username=username,
            password_hash=password_hash,
            enabled=True,
            created_at=now,
            tokens_valid_after=0.0,
        ):
            raise UserExists(f"user {username!r} already exists")
        return user

    async def get(self, user_id: str) -> User | None:
        # Every grant and every introspection reads its user: on SQLite, without a hop.
        direct = self._database.direct
        if direct is not None:

            def get(conn: sqlite3.Connection) -> User | None:
                row = conn.execute(_SELECT_USER, {"user_id": user_id}).fetchone()
                return None if row is None else _user(row)

            return await direct.read(get)
        postgres = self._database.postgres
        if postgres is not None:
            row = await postgres.fetchrow(_PG_SELECT_USER, {"user_id": user_id})
            return None if row is None else _user(row)
        return await self._one(users.c.user_id == user_id)

    async def token_state(self, user_id: str) -> tuple[bool, float] | None:
        direct = self._database.direct
        if direct is not None:

            def state(conn: sqlite3.Connection) -> tuple[bool, float] | None:
                row = conn.execute(_SELECT_USER_STATE, {"user_id": user_id}).fetchone()
                return None if row is None else (bool(row[0]), row[1])

            return await direct.read(state)
        postgres = self._database.postgres
        if postgres is not None:
            row = await postgres.fetchrow(_PG_SELECT_USER_STATE, {"user_id": user_id})
            return None if row is None else (bool(row[0]), float(row[1]))
        return await self._rows.one(
            select(users.c.enabled, users.c.tokens_valid_after).where(users.c.user_id == user_id),
            lambda row: (bool(row["enabled"]), float(row["tokens_valid_after"])),
        )

    async def by_username(self, username: str) -> User | None:
        return await self._one(users.c.username == username)

    async def _one(self, condition: ColumnElement[bool]) -> User | None:
        return await self._rows.one(select(users).where(condition), _user)

    async def list(self) -> list[User]:
        return await self._rows.all(select(users).order_by(users.c.username), _user)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._set(user_id, password_hash=password_hash)

    async def set_policy(self, user_id: str, policy: str) -> bool:
        return await self._set(user_id, auth_policy=policy)

    async def set_enabled(self, user_id: str, enabled: bool) -> bool:
        return await self._set(user_id, enabled=enabled)

    async def invalidate_tokens(self, user_id: str, now: float) -> bool:
        return await self._set(user_id, tokens_valid_after=now)

    async def _set(self, user_id: str, **values: object) -> bool:
        return bool(
            await self._rows.run(update(users).where(users.c.user_id == user_id).values(**values))
        )

    async def delete(self, user_id: str) -> bool:
        return bool(await self._rows.run(delete(users).where(users.c.user_id == user_id)))
