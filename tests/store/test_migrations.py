"""Migrations over existing rows, on SQLite and PostgreSQL: what was stored before a
revision still loads after it, with new fields at their safe defaults."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

import bastion.store.sql.migrations
from bastion.store.sql.clients import SqlClientStore
from bastion.store.sql.database import Database
from bastion.store.sql.grants import SqlGrantStore

NOW = 1_700_000_000.0
MIGRATIONS = Path(bastion.store.sql.migrations.__file__).parent


def _migrate(connection: Connection, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


async def _run(database: Database, action: str, revision: str) -> None:
    async with database.connect() as conn:
        await conn.run_sync(_migrate, action, revision)


CLIENT_0006 = text(
    "INSERT INTO clients (client_id, client_type, auth_method, name, redirect_uris, scopes, "
    "grant_types, resources, require_par, enabled, source, created_at, updated_at) VALUES "
    "('old-gateway', 'confidential', 'client_secret_basic', 'Old', '[]', '[]', "
    "'[\"urn:ietf:params:oauth:grant-type:token-exchange\"]', '[\"https://orders\"]', "
    ":no, :yes, 'cli', :now, :now)"
)
FAMILY_0006 = text(
    "INSERT INTO refresh_families (family_id, salt, client_id, subject, session_id, scope, "
    "resources, auth_time, acr, amr, generation, rotated_at, created_at, last_used_at, "
    "expires_at) VALUES ('old-family-0123456789', :salt, 'app', 'u1', 's1', '[]', '[]', "
    ":now, '', '[]', 2, :now, :now, :now, :later)"
)


async def test_0007_keeps_clients_and_families_and_grants_nothing_new(
    database: Database,
) -> None:
    """A client from before 0007 may exchange no one's tokens and chain nothing, and has
    no statement values (registered clients keep the update rules they had); a family
    rotated before it has no recorded instance, so no grace applies to it."""
    await _run(database, "upgrade", "0006")
    async with database.connect() as conn:
        await conn.execute(CLIENT_0006, {"no": False, "yes": True, "now": NOW})
        await conn.execute(FAMILY_0006, {"salt": b"s" * 16, "now": NOW, "later": NOW + 60})
    await database.upgrade()
    client = await SqlClientStore(database).get("old-gateway")
    assert client is not None
    assert client.exchange_subject_audiences == frozenset()
    assert client.exchange_delegation_chains is False
    assert client.statement_values is None
    family = await SqlGrantStore(database).get_family("old-family-0123456789")
    assert family is not None
    assert family.rotated_by == ""
    await _run(database, "downgrade", "0006")
    await database.upgrade()
    assert await SqlClientStore(database).get("old-gateway") == client


async def test_0011_adds_device_records_beside_existing_families(database: Database) -> None:
    """Families from before 0011 stay as they were and are found by their DPoP key (a
    revoked device revokes them); downgrading drops the device tables and only them."""
    from bastion.device.records import Device
    from bastion.store.sql.devices import SqlDeviceStore

    await _run(database, "upgrade", "0010")
    async with database.connect() as conn:
        await conn.execute(FAMILY_0006, {"salt": b"s" * 16, "now": NOW, "later": NOW + 60})
    await database.upgrade()
    family = await SqlGrantStore(database).get_family("old-family-0123456789")
    assert family is not None
    assert family.dpop_jkt is None
    device = Device("dev-1", "ios", "app", "device", NOW, NOW, NOW, key_id="k", dpop_jkt="j")
    await SqlDeviceStore(database).add(device)
    assert await SqlDeviceStore(database).get("dev-1") == device
    await _run(database, "downgrade", "0010")
    assert await SqlGrantStore(database).get_family("old-family-0123456789") == family
    await database.upgrade()
    assert await SqlDeviceStore(database).get("dev-1") is None
