"""``bastion demo``: Bastion on the embedded default, with a demo app and user to try."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from urllib.parse import urlencode

import click

from bastion import wiring
from bastion.accounts.passwords import Passwords
from bastion.cli.output import err_console, handles_errors
from bastion.cli.serve import override_server, run_server
from bastion.config import Settings
from bastion.oauth import pkce
from bastion.store.sql.users import SqlUserStore

DEMO_CONFIG = """\
# Bastion demo: embedded default (SQLite in this folder, hot state in memory).
environment = "development"
# localhost rather than 127.0.0.1: WebAuthn (passkeys) refuses an IP address as RP id.
issuer = "http://localhost:{port}"
data_dir = "."

[server]
host = "127.0.0.1"
port = {port}

# A native app as AppAuth would register it: loopback redirect with any port (RFC 8252).
[[oauth.clients]]
client_id = "demo-app"
name = "Bastion demo app"
type = "public"
redirect_uris = ["http://127.0.0.1/callback", "com.example.bastion.demo:/callback"]
scopes = ["openid", "profile"]
"""


def _secret_file(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")


async def _demo_user(settings: Settings, directory: Path) -> None:
    """A user named ``demo`` whose password is kept in a file only its owner can read."""
    database = wiring.open_database(settings)
    try:
        users = SqlUserStore(database)
        if await users.by_username("demo") is None:
            password = secrets.token_urlsafe(12)
            await users.create("demo", Passwords(settings.accounts.passwords).hash(password), 0.0)
            _secret_file(directory / "demo-user-password.txt", password)
    finally:
        await database.close()


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".demo"),
    show_default=True,
    help="Where the demo keeps its data.",
)
@click.option("--port", type=int, default=8000, show_default=True)
@handles_errors
def demo(directory: Path, port: int) -> None:
    """Run Bastion on the embedded default with a demo app and user, and say what to open."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = directory / "bastion.toml"
    if not config.exists():
        config.write_text(DEMO_CONFIG.format(port=port), encoding="utf-8")
    settings = override_server(wiring.load(config, environ={}), port=port)
    asyncio.run(wiring.migrate(settings))
    asyncio.run(_demo_user(settings, directory))
    verifier = secrets.token_urlsafe(48)
    _secret_file(directory / "demo-pkce-verifier.txt", verifier)
    base = settings.issuer
    authorize = f"{base}/authorize?" + urlencode(
        {
            "client_id": "demo-app",
            "redirect_uri": "http://127.0.0.1:8765/callback",
            "response_type": "code",
            "scope": "openid profile",
            "state": "demo",
            "code_challenge": pkce.s256(verifier),
            "code_challenge_method": "S256",
        }
    )
    err_console.print(
        "\n[bold]Bastion demo[/] (development; data in "
        f"{directory.resolve()})\n"
        f"  liveness     {base}/healthz\n"
        f"  readiness    {base}/readyz\n"
        f"  public keys  {base}/jwks.json\n"
        f"  discovery    {base}/.well-known/openid-configuration\n"
        f"  sign in      {authorize}\n"
        f"  account      {base}/account  (authenticator app, passkeys, sessions)\n"
        f"               user [bold]demo[/], password in "
        f"{(directory / 'demo-user-password.txt').resolve()}\n"
        f"               the browser lands on 127.0.0.1:8765/callback?code=...; redeem it at "
        f"{base}/token with the verifier in {(directory / 'demo-pkce-verifier.txt').resolve()}\n"
        f"  config       {config.resolve()}  (check it with `bastion check -c {config}`)\n",
        soft_wrap=True,
    )
    run_server(settings, config)
