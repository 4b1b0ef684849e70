"""Deleting expired rows on SQLite and PostgreSQL, with a fixed clock: every expired
record goes, and nothing still needed does (revocation until a token's ``exp``, refresh
families within their lifetime, codes while replay detection can still revoke what
came from them, RFC 6749 §4.1.2 and RFC 9700 §4.5)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bastion import wiring
from bastion.accounts.records import BrowserSession, RecoveryTicket
from bastion.authserver.stores import IssuedToken
from bastion.cli.main import cli
from bastion.clock import FixedClock
from bastion.config import load_settings
from bastion.oauth.codes import CodeGrant
from bastion.oauth.refresh import Family
from bastion.oauth.tokens import MAX_CLOCK_SKEW
from bastion.store.sql.database import Database
from bastion.store.sql.factors import SqlFactorStore
from bastion.store.sql.grants import SqlGrantStore
from bastion.store.sql.idempotency import SqlIdempotencyStore
from bastion.store.sql.pruning import TABLES, Pruner, prune_expired
from bastion.store.sql.schema import metadata
from bastion.store.sql.sessions import SqlSessionStore
from tests.conftest import write_config

T0 = 1_800_000_000.0
HOUR, DAY = 3600.0, 86_400.0
LIFETIME = DAY  # keys.max_token_lifetime


def code(name: str, *, issued_at: float = T0) -> CodeGrant:
    return CodeGrant(
        code_hash=name,
        client_id="app",
        redirect_uri="com.example:/cb",
        code_challenge="c" * 43,
        scope=("openid",),
        resources=(),
        subject="alice",
        session_id="s",
        auth_time=issued_at,
        acr="",
        amr=("pwd",),
        nonce=None,
        issued_at=issued_at,
        expires_at=issued_at + 60,
    )


def family(name: str, *, created_at: float = T0, lifetime: float = 90 * DAY) -> Family:
    return Family(
        family_id=name,
        salt=b"s" * 16,
        client_id="app",
        subject="alice",
        scope=("openid",),
        resources=(),
        generation=0,
        rotated_at=created_at,
        created_at=created_at,
        last_used_at=created_at,
        expires_at=created_at + lifetime,
        session_id="s",
    )


async def rows(database: Database, table: str) -> int:
    async with database.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(metadata.tables[table]))
        return int(count or 0)


async def prune(database: Database, now: float) -> dict[str, int]:
    return await prune_expired(database, now, max_token_lifetime=LIFETIME, batch=3)


async def test_access_token_index_until_exp(migrated: Database) -> None:
    """Revoking a family denylists its live tokens: each row is kept until the token's
    ``exp`` (plus the skew a verifier allows), then deleted, in batches."""
    grants = SqlGrantStore(migrated)
    await grants.create_family(family("f"))
    for index in range(7):
        await grants.record_token(
            f"old-{index}", client_id="app", subject="alice", expires_at=T0, family_id="f"
        )
    await grants.record_token(
        "live", client_id="app", subject="alice", expires_at=T0 + 300, family_id="f"
    )
    assert (await prune(migrated, T0 + MAX_CLOCK_SKEW - 1))["issued_tokens"] == 0
    counts = await prune(migrated, T0 + MAX_CLOCK_SKEW + 1)
    assert counts["issued_tokens"] == 7
    assert await grants.live_tokens(T0 + 299, family_ids=["f"]) == [("live", T0 + 300)]
    assert (await prune(migrated, T0 + 300 + MAX_CLOCK_SKEW + 1))["issued_tokens"] == 1
    assert await rows(migrated, "issued_tokens") == 0


async def test_refresh_families_live_out_their_lifetime(migrated: Database) -> None:
    grants = SqlGrantStore(migrated)
    await grants.create_family(family("short", lifetime=HOUR))
    await grants.create_family(family("long"))
    end = T0 + HOUR
    # Past its end, the family's last access tokens may still verify and be revoked.
    await prune(migrated, end + LIFETIME)
    assert await grants.get_family("short") is not None
    counts = await prune(migrated, end + LIFETIME + MAX_CLOCK_SKEW + 1)
    assert counts["refresh_families"] == 1
    assert await grants.get_family("short") is None
    assert await grants.get_family("long") is not None
    assert await grants.revoke_families(end + 2 * LIFETIME, "test", family_id="long") == ["long"]


async def test_consumed_codes_keep_replay_detection(migrated: Database) -> None:
    """A code redeemed into a family stays with the family, so a second redemption is
    still a replay that finds the family to revoke; then both go together."""
    grants = SqlGrantStore(migrated)
    await grants.save_code(code("redeemed"))
    await grants.save_code(code("never-used"))
    await grants.save_code(code("no-refresh"))
    assert (await grants.consume_code("redeemed", T0 + 5))[1]
    redeemed = IssuedToken("t-f", "app", "alice", T0 + 305, family_id="f")
    assert await grants.issue_from_code("redeemed", family("f", lifetime=30 * DAY), redeemed)
    assert (await grants.consume_code("no-refresh", T0 + 5))[1]
    await grants.record_token(
        "t", client_id="app", subject="alice", expires_at=T0 + 305, code_hash="no-refresh"
    )

    # A day after expiry, the tokens of a code without a family may still verify.
    await prune(migrated, T0 + 60 + LIFETIME)
    assert await rows(migrated, "authorization_codes") == 3
    counts = await prune(migrated, T0 + 60 + LIFETIME + MAX_CLOCK_SKEW + 1)
    assert counts["authorization_codes"] == 2
    grant, consumed_now = await grants.consume_code("redeemed", T0 + 10 * DAY)
    assert grant is not None
    assert not consumed_now, "a replay, not a first redemption"
    assert await grants.family_of_code("redeemed") == "f"

    counts = await prune(migrated, T0 + 31 * DAY + LIFETIME + MAX_CLOCK_SKEW)
    assert counts["refresh_families"] == 1
    assert counts["authorization_codes"] == 1
    assert await rows(migrated, "authorization_codes") == 0


async def test_sessions_tickets_and_idempotency_records(migrated: Database) -> None:
    sessions, factors = SqlSessionStore(migrated), SqlFactorStore(migrated)
    for name, expires_at in (("gone", T0), ("live", T0 + DAY)):
        await sessions.create(
            f"hash-{name}",
            BrowserSession(name, "alice", T0, "", ("pwd",), T0, T0, expires_at, None),
        )
        await factors.add_ticket(
            f"ticket-{name}", RecoveryTicket("alice", False, "operator", expires_at), T0
        )
    idempotency = SqlIdempotencyStore(migrated, FixedClock(T0))
    assert await idempotency.claim("gone", b"{}", 60) is None
    assert await idempotency.claim("live", b"{}", DAY) is None

    counts = await prune(migrated, T0 + HOUR)
    assert counts["browser_sessions"] == 1
    assert counts["recovery_tickets"] == 1
    assert counts["idempotency_records"] == 1
    assert await sessions.get("hash-live") is not None
    assert await factors.ticket("ticket-live", T0 + HOUR) is not None
    assert await idempotency.claim("live", b"other", DAY) == b"{}"


async def test_nothing_to_delete_reports_every_table(migrated: Database) -> None:
    assert await prune(migrated, T0) == dict.fromkeys(TABLES, 0)


async def test_a_failing_prune_is_logged_and_tried_again(
    migrated: Database, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """The pruner never stops serving: an error is logged and the next interval retries."""
    # A database without Bastion's tables: every run fails.
    broken = Database(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    clock = FixedClock(T0 + 2 * DAY)
    grants = SqlGrantStore(migrated)
    await grants.record_token("old", client_id="app", subject="alice", expires_at=T0)
    try:

        def failures() -> int:
            return sum("deleting expired rows failed" in r.message for r in caplog.records)

        with caplog.at_level(logging.WARNING, "bastion.store"):
            async with Pruner(broken, clock, interval=0.01, max_token_lifetime=LIFETIME).running():
                # Polled, not slept: on a loaded machine two runs can take well over 0.1 s.
                for _ in range(500):
                    if failures() >= 2:
                        break
                    await asyncio.sleep(0.01)
        assert failures() >= 2
    finally:
        await broken.close()
    async with Pruner(migrated, clock, interval=0.01, max_token_lifetime=LIFETIME).running():
        for _ in range(100):
            if await rows(migrated, "issued_tokens") == 0:
                break
            await asyncio.sleep(0.01)
    assert await rows(migrated, "issued_tokens") == 0


def test_db_prune_command(tmp_path: Path, master_key_b64: str) -> None:
    config = write_config(tmp_path)
    env = {"BASTION_CONFIG": "", "BASTION_MASTER_KEY": master_key_b64, "COLUMNS": "80"}
    runner = CliRunner()
    not_migrated = runner.invoke(cli, ["db", "prune", "-c", str(config)], env=env)
    assert not_migrated.exit_code == 3
    assert "bastion db upgrade" in not_migrated.stderr
    assert runner.invoke(cli, ["db", "upgrade", "-c", str(config)], env=env).exit_code == 0

    async def seed() -> None:
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bastion.db'}")
        try:
            # Expired long before the wall clock the command uses.
            await SqlGrantStore(database).record_token(
                "old", client_id="app", subject="alice", expires_at=1_000_000_000.0
            )
        finally:
            await database.close()

    asyncio.run(seed())
    shown = runner.invoke(cli, ["db", "prune", "-c", str(config)], env=env)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[0] == "deleted 1 expired row(s)"
    for table in TABLES:
        assert table in shown.stdout
    again = runner.invoke(cli, ["db", "prune", "-c", str(config), "--json"], env=env)
    assert again.exit_code == 0
    assert '"issued_tokens": 0' in again.stdout


@pytest.mark.parametrize("interval", ["50ms", "0s"])
async def test_a_served_process_prunes_every_interval(
    tmp_path: Path, master_key_b64: str, interval: str
) -> None:
    """`bastion serve` runs the pruner in its lifespan; `prune_interval = 0` turns it off."""
    path = write_config(tmp_path, f'[database]\nprune_interval = "{interval}"\n')
    settings = load_settings(path, {"BASTION_MASTER_KEY": master_key_b64})
    await wiring.migrate(settings)
    async with wiring.open_runtime(settings, clock=FixedClock(T0 + 2 * DAY)) as runtime:
        grants = SqlGrantStore(runtime.database)
        await grants.record_token("old", client_id="app", subject="alice", expires_at=T0)
        async with runtime.housekeeping():
            await asyncio.sleep(0.5)
        left = await rows(runtime.database, "issued_tokens")
    assert left == (1 if interval == "0s" else 0)
