"""Fixtures shared with the areas DPoP plugs into."""

from tests.authserver.test_registration import registrar
from tests.cli.test_admin_commands import config

__all__ = ["config", "registrar"]
