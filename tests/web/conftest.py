from __future__ import annotations

import asyncio

import pytest

from bastion import wiring
from bastion.config import Settings


@pytest.fixture
def migrated_settings(settings: Settings) -> Settings:
    """Development settings whose SQLite database is migrated."""

    asyncio.run(wiring.migrate(settings))
    return settings
