"""Browser sessions in SQL (``bastion.accounts.stores.SessionStore``), by cookie hash."""

from __future__ import annotations

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import RowMapping

from bastion.accounts.records import BrowserSession
from bastion.store.sql.codec import dump_list, load_tuple
from bastion.store.sql.database import Database
from bastion.store.sql.rows import Rows
from bastion.store.sql.schema import browser_sessions


def _session(row: RowMapping) -> BrowserSession:
    return BrowserSession(
        row["session_id"],
        row["subject"],
        row["auth_time"],
        row["acr"],
        load_tuple(row["amr"]),
        row["created_at"],
        row["last_seen_at"],
        row["expires_at"],
        row["revoked_at"],
        row["user_agent"] or "",
    )


class SqlSessionStore:
    def __init__(self, database: Database) -> None:
        self._rows = Rows(database)

    async def create(self, session_hash: str, session: BrowserSession) -> None:
        await self._rows.run(
            insert(browser_sessions).values(
                session_hash=session_hash,
                session_id=session.session_id,
                subject=session.subject,
                auth_time=session.auth_time,
                acr=session.acr,
                amr=dump_list(session.amr),
                created_at=session.created_at,
                last_seen_at=session.last_seen_at,
                expires_at=session.expires_at,
                user_agent=session.user_agent,
            )
        )

    async def get(self, session_hash: str) -> BrowserSession | None:
        return await self._rows.one(
            select(browser_sessions).where(browser_sessions.c.session_hash == session_hash),
            _session,
        )

    async def active(self, subject: str, now: float) -> list[BrowserSession]:
        condition = and_(
            browser_sessions.c.subject == subject,
            browser_sessions.c.revoked_at.is_(None),
            browser_sessions.c.expires_at > now,
        )
        return await self._rows.all(
            select(browser_sessions)
            .where(condition)
            .order_by(browser_sessions.c.last_seen_at.desc()),
            _session,
        )

    async def elevate(
        self, session_id: str, new_hash: str, acr: str, amr: tuple[str, ...], now: float
    ) -> BrowserSession | None:
        condition = and_(
            browser_sessions.c.session_id == session_id, browser_sessions.c.revoked_at.is_(None)
        )
        elevated = await self._rows.run(
            update(browser_sessions)
            .where(condition)
            .values(
                session_hash=new_hash, acr=acr, amr=dump_list(amr), auth_time=now, last_seen_at=now
            )
        )
        return await self.get(new_hash) if elevated else None

    async def touch(self, session_hash: str, now: float) -> None:
        await self._rows.run(
            update(browser_sessions)
            .where(browser_sessions.c.session_hash == session_hash)
            .values(last_seen_at=now)
        )

    async def forget(self, subject: str) -> None:
        await self._rows.run(delete(browser_sessions).where(browser_sessions.c.subject == subject))

    async def revoke(
        self, now: float, *, session_id: str | None = None, subject: str | None = None
    ) -> list[str]:
        if (session_id is None) == (subject is None):
            raise ValueError("revoke one session or one subject's sessions")
        column = browser_sessions.c.session_id if session_id else browser_sessions.c.subject
        condition = and_(column == (session_id or subject), browser_sessions.c.revoked_at.is_(None))
        async with self._rows.transaction() as tx:
            ids = await tx.values(select(browser_sessions.c.session_id).where(condition))
            await tx.run(update(browser_sessions).where(condition).values(revoked_at=now))
        return [str(i) for i in ids]
