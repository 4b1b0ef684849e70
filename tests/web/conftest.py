from __future__ import annotations

import asyncio

import pytest

from bastion.config import Settings
from tests.support import schema


@pytest.fixture
def migrated_settings(settings: Settings) -> Settings:
    """Development settings whose SQLite database is migrated."""

    asyncio.run(schema.migrate(settings))
    return settings
