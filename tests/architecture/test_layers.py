"""The layers DESIGN.md draws: protocol cores import nothing from the web, the stores or
ASGI, and the CLI lists its commands without loading them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from bastion.cli.main import COMMANDS, cli

CORES = (
    "bastion.oauth.pkce",
    "bastion.oauth.authorize",
    "bastion.oauth.refresh",
    "bastion.oauth.tokens",
    "bastion.oauth.redirects",
    "bastion.oauth.clients",
    "bastion.oauth.client_auth",
    "bastion.oauth.exchange",
    "bastion.guards.gcra",
    "bastion.guards.breaker",
    "bastion.guards.retries",
    "bastion.guards.cursors",
    "bastion.guards.ratelimit_headers",
    "bastion.guards.idempotency",
    "bastion.gateway.identifiers",
    "bastion.gateway.templates",
    "bastion.gateway.router",
    "bastion.gateway.caller",
    "bastion.gateway.policy",
    "bastion.gateway.bindings",
    "bastion.accounts.totp",
    "bastion.accounts.levels",
    "bastion.accounts.stepup",
    "bastion.crypto.envelope",
    "bastion.device.app_attest",
    "bastion.device.play_integrity",
    "bastion.device.risk",
    "bastion.device.cohorts",
    "bastion.device.versions",
    "bastion.device.verdicts",
    "bastion.device.encryption_key",
    "bastion.device.binding",
)
# Frameworks and I/O a core must not pull in (directly or through the package root).
HEAVY = ("starlette", "sqlalchemy", "aiohttp", "redis", "pydantic", "uvicorn", "asyncpg", "jinja2")
SHELLS = ("bastion.web", "bastion.store", "bastion.config", "bastion.wiring", "bastion.cli")


def _loaded_after(statement: str) -> set[str]:
    probe = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(found.split())


@pytest.mark.parametrize("module", CORES)
def test_cores_import_no_framework_store_or_web(module: str) -> None:
    loaded = _loaded_after(f"import {module}")
    assert not {name.split(".")[0] for name in loaded} & set(HEAVY)
    assert not [name for name in loaded if name.startswith(SHELLS)]


def test_the_cli_lists_commands_without_loading_them() -> None:
    loaded = _loaded_after("import bastion.cli.main")
    assert not {name.split(".")[0] for name in loaded} & {"sqlalchemy", "pydantic", "aiohttp"}
    listing = CliRunner().invoke(cli, ["--help"])
    for name in COMMANDS:
        assert f"  {name} " in listing.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_listed_command_loads(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
