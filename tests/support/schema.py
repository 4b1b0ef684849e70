"""Databases at the schema's head without running every migration in every test.

The migrations run once per session, into an SQLite file that is never written to again;
a test's new SQLite database starts as a copy of it, and ``wiring.migrate`` then finds it
at head, as it would after a real upgrade. The migrations themselves are tested on empty
databases (tests/store/test_migrations.py and the store tests). PostgreSQL databases are
migrated as before: copying a template database there costs as much as the migrations.
"""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from bastion import wiring
from bastion.config import Settings
from bastion.store.sql.database import Database
from bastion.store.sql.sqlite_files import database_path

_TEMPLATE: list[Path] = []


async def _template() -> Path:
    """The SQLite file migrated to head, made on first use."""
    if not _TEMPLATE:
        directory = Path(tempfile.mkdtemp(prefix="bastion-schema-"))
        atexit.register(shutil.rmtree, directory, True)
        path = directory / "bastion.db"
        database = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await database.upgrade()
        finally:
            await database.close()
        _TEMPLATE.append(path)
    return _TEMPLATE[0]


async def migrate(settings: Settings) -> None:
    """``wiring.migrate(settings)``; a new SQLite database is first made a copy of the
    migrated file (Bastion creates the file itself, with its own permissions)."""
    path = database_path(settings.database_url)
    if path is not None and (not path.exists() or path.stat().st_size == 0):
        template = await _template()
        await wiring.open_database(settings).close()  # the data directory and empty file
        with closing(sqlite3.connect(template)) as source, closing(sqlite3.connect(path)) as target:
            source.backup(target)
    await wiring.migrate(settings)
