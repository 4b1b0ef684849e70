"""The SessionStore contract (browser sessions), run against every implementation."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bastion.accounts.records import BrowserSession
from bastion.accounts.stores import SessionStore

NOW = 1_700_000_000.0


def session(session_id: str = "sid1", subject: str = "u1", **changes: object) -> BrowserSession:
    created = BrowserSession(session_id, subject, NOW, "pwd", ("pwd",), NOW, NOW, NOW + 3600, None)
    return replace(created, **changes)  # type: ignore[arg-type]


async def test_browser_sessions(session_store: SessionStore) -> None:
    created = session()
    await session_store.create("hash1", created)
    assert await session_store.get("hash1") == created
    assert await session_store.get("sid1") is None, "looked up by the cookie's hash only"
    assert await session_store.revoke(NOW + 1, subject="u1") == ["sid1"]
    revoked = await session_store.get("hash1")
    assert revoked is not None
    assert revoked.revoked_at == NOW + 1


async def test_user_agent_round_trips(session_store: SessionStore) -> None:
    await session_store.create("h", session(user_agent="Phone/1.0"))
    found = await session_store.get("h")
    assert found is not None
    assert found.user_agent == "Phone/1.0"


async def test_active_excludes_revoked_and_ended_sessions_newest_first(
    session_store: SessionStore,
) -> None:
    await session_store.create("h1", session("s1", last_seen_at=NOW + 1))
    await session_store.create("h2", session("s2", last_seen_at=NOW + 2))
    await session_store.create("h3", session("s3", expires_at=NOW + 10))
    await session_store.create("h4", session("s4"))
    await session_store.create("other", session("s5", subject="u2"))
    await session_store.revoke(NOW, session_id="s4")
    await session_store.touch("h1", NOW + 5)
    active = await session_store.active("u1", NOW + 10)
    assert [s.session_id for s in active] == ["s1", "s2"]
    assert active[0].last_seen_at == NOW + 5


async def test_elevate_moves_a_live_session_to_a_new_hash(session_store: SessionStore) -> None:
    await session_store.create("old", session())
    elevated = await session_store.elevate("sid1", "new", "mfa", ("pwd", "otp"), NOW + 7)
    assert elevated == session(
        acr="mfa", amr=("pwd", "otp"), auth_time=NOW + 7, last_seen_at=NOW + 7
    )
    assert await session_store.get("new") == elevated
    assert await session_store.get("old") is None, "the old cookie no longer opens it"
    await session_store.revoke(NOW + 8, session_id="sid1")
    assert await session_store.elevate("sid1", "newer", "mfa", ("otp",), NOW + 9) is None
    assert await session_store.elevate("unknown", "x", "mfa", ("otp",), NOW + 9) is None


async def test_revoke_answers_only_what_it_revoked(session_store: SessionStore) -> None:
    await session_store.create("h1", session("s1"))
    await session_store.create("h2", session("s2"))
    assert await session_store.revoke(NOW, session_id="s1") == ["s1"]
    assert await session_store.revoke(NOW, session_id="s1") == []
    assert await session_store.revoke(NOW + 1, subject="u1") == ["s2"]
    first = await session_store.get("h1")
    assert first is not None
    assert first.revoked_at == NOW, "a second revocation keeps the first time"
    with pytest.raises(ValueError, match="one"):
        await session_store.revoke(NOW)
    with pytest.raises(ValueError, match="one"):
        await session_store.revoke(NOW, session_id="s1", subject="u1")


async def test_forget_deletes_only_the_subjects_sessions(session_store: SessionStore) -> None:
    await session_store.create("h1", session("s1"))
    await session_store.create("h2", session("s2", subject="u2"))
    await session_store.forget("u1")
    assert await session_store.get("h1") is None
    assert await session_store.get("h2") is not None
