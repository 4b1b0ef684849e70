"""What the demo app remembers per browser, in memory, under an HttpOnly random cookie.

A native app keeps its tokens in the platform's secure storage; this page keeps them on
the server side of the app, so the browser holds only a random key that script cannot
read. Sessions end after an hour unused, and at most ``MAX_SESSIONS`` are kept.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from bastion.caches import TTLCache
from bastion.clock import Clock
from bastion.demo.client import Exchange, Pending, Tokens

COOKIE = "demo-app-session"
IDLE_SECONDS = 3600.0
MAX_SESSIONS = 256


@dataclass(frozen=True)
class Answer:
    """What one button did: its calls, whether the last was refused, what it shows."""

    title: str
    lesson: str
    exchanges: tuple[Exchange, ...]
    links: tuple[tuple[str, str], ...] = ()

    @property
    def refused(self) -> bool:
        return bool(self.exchanges) and self.exchanges[-1].refused


@dataclass
class Session:
    pending: Pending | None = None
    tokens: Tokens | None = None
    # The refresh token the last rotation replaced: spent, kept to show its reuse.
    spent_refresh: str | None = None
    rotations: int = 0
    note_id: int | None = None
    answer: Answer | None = None


class Sessions:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._sessions: TTLCache[str, Session] = TTLCache(clock, MAX_SESSIONS)

    def get(self, key: str | None) -> Session | None:
        session = self._sessions.get(key) if key else None
        if session is not None and key is not None:
            self._keep(key, session)
        return session

    def new(self) -> tuple[str, Session]:
        key, session = secrets.token_urlsafe(32), Session()
        self._keep(key, session)
        return key, session

    def _keep(self, key: str, session: Session) -> None:
        self._sessions.set(key, session, self._clock.now() + IDLE_SECONDS)
