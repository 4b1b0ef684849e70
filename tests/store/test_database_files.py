"""The SQLite database and everything SQLite writes beside it are private to Bastion's user:
files 0600 and the data directory 0700, whatever the umask and whether the directory
already existed. ``bastion check`` warns about an existing database that is not."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from bastion.cli.main import cli
from bastion.store.sql.database import Database
from bastion.store.sql.sqlite_files import create_private_database
from tests.conftest import write_config


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o002, 0o000], ids=["umask-022", "umask-002", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The usual umask, and permissive ones that must not widen anything either."""
    previous = os.umask(request.param)
    yield int(request.param)
    os.umask(previous)


async def test_database_in_an_existing_directory_is_private(tmp_path: Path, umask: int) -> None:
    directory = tmp_path / "data"
    directory.mkdir()
    directory.chmod(0o755)
    path = directory / "bastion.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await database.upgrade()
        assert mode(path) == 0o600
        # WAL mode: the -wal and -shm files exist while a connection is open.
        async with database.connect() as conn:
            await conn.execute(text("INSERT INTO object_owners VALUES ('k', 'o', 'u', 0)"))
            companions = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
            assert all(p.exists() for p in companions)
            assert {p.name: mode(p) for p in companions} == {p.name: 0o600 for p in companions}
    finally:
        await database.close()
    assert mode(Path(f"{path}.migrate.lock")) == 0o600


async def test_a_new_data_directory_is_0700(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "new" / "bastion.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await database.ping()
    finally:
        await database.close()
    assert mode(path.parent) == 0o700
    assert mode(path) == 0o600


def test_a_rollback_journal_copies_the_database_mode(tmp_path: Path, umask: int) -> None:
    """SQLite creates -journal (and -wal, -shm) with the database file's own mode, so a
    database file created 0600 keeps every companion 0600 (SQLite's unix VFS,
    findCreateFileMode)."""
    path = tmp_path / "bastion.db"
    create_private_database(path)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("CREATE TABLE t (x)")
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO t VALUES (1)")
        journal = Path(f"{path}-journal")
        assert journal.exists()
        assert mode(journal) == 0o600
        connection.execute("COMMIT")
    finally:
        connection.close()


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    """Bastion never changes the mode of a file it did not create; `bastion check` says."""
    path = tmp_path / "bastion.db"
    path.touch()
    path.chmod(0o640)
    create_private_database(path)
    assert mode(path) == 0o640


def test_check_warns_about_a_readable_database(tmp_path: Path, master_key_b64: str) -> None:
    config = write_config(tmp_path)
    env = {"BASTION_CONFIG": "", "BASTION_MASTER_KEY": master_key_b64}
    runner = CliRunner()
    # A shared directory that does not hold the database yet is not judged.
    (tmp_path / "data").mkdir(mode=0o755)
    (tmp_path / "data").chmod(0o755)
    assert runner.invoke(cli, ["check", "-c", str(config), "--strict"], env=env).exit_code == 0
    assert runner.invoke(cli, ["db", "upgrade", "-c", str(config)], env=env).exit_code == 0
    data = tmp_path / "data"
    data.chmod(0o700)
    clean = runner.invoke(cli, ["check", "-c", str(config), "--strict"], env=env)
    assert clean.exit_code == 0, clean.output
    assert "warning" not in clean.stderr
    data.chmod(0o755)
    (data / "bastion.db").chmod(0o644)
    loose = runner.invoke(cli, ["check", "-c", str(config)], env=env)
    assert loose.exit_code == 0
    assert f"{data / 'bastion.db'} has mode 0644" in loose.stderr
    assert f"{data} has mode 0755" in loose.stderr
    assert "chmod 600" in loose.stderr
    assert "chmod 700" in loose.stderr
    assert runner.invoke(cli, ["check", "-c", str(config), "--strict"], env=env).exit_code == 2
