from __future__ import annotations

import asyncio

import pytest

from bastion import wiring
from bastion.config import Settings


@pytest.fixture
def migrated_settings(settings: Settings) -> Settings:
    """Development settings whose SQLite database is migrated."""

    async def migrate() -> None:
        database = wiring.open_database(settings)
        try:
            await database.upgrade()
        finally:
            await database.close()

    asyncio.run(migrate())
    return settings
