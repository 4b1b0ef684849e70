"""``bastion demo``: Bastion on the embedded default, with a demo app and user to try."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import click

from bastion import wiring
from bastion.accounts.passwords import Passwords
from bastion.accounts.stores import UserStore
from bastion.cli.output import err_console, handles_errors
from bastion.cli.serve import override_server, run_server
from bastion.config import Settings
from bastion.oauth import pkce
from bastion.store.sql.users import SqlUserStore

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
EXAMPLE_PORT, EXAMPLE_UPSTREAM = "8000", "http://127.0.0.1:8001"


def demo_config(port: int, upstream_port: int) -> str:
    """examples/bastion.toml with the ports asked for: the demo app, user and gateway."""
    try:
        text = (EXAMPLES / "bastion.toml").read_text(encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(
            f"{EXAMPLES} is missing: run the demo from a clone of the repository"
        ) from exc
    header = "# Written by `bastion demo` on every start; copy it elsewhere to edit it.\n"
    return header + (
        text.replace(f"localhost:{EXAMPLE_PORT}", f"localhost:{port}")
        .replace(f"port = {EXAMPLE_PORT}", f"port = {port}")
        .replace(EXAMPLE_UPSTREAM, f"http://127.0.0.1:{upstream_port}")
    )


@contextmanager
def notes_service(port: int) -> Iterator[None]:
    """The deliberately naive upstream of examples/, for as long as the demo runs."""
    # Our own interpreter and a file of this repository: no untrusted input.
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, str(EXAMPLES / "notes_service.py"), "--port", str(port)]
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def _secret_file(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")


async def _demo_user(settings: Settings, directory: Path) -> str:
    """A user named ``demo`` whose password is kept in a file only its owner can read."""
    database = wiring.open_database(settings)
    try:
        users: UserStore = SqlUserStore(database)
        user = await users.by_username("demo")
        if user is None:
            password = secrets.token_urlsafe(12)
            user = await users.create(
                "demo", Passwords(settings.accounts.passwords).hash(password), 0.0
            )
            _secret_file(directory / "demo-user-password.txt", password)
        return user.user_id
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
@click.option(
    "--upstream-port", type=int, default=None, help="Port of the demo upstream (default: port+1)."
)
@handles_errors
def demo(directory: Path, port: int, upstream_port: int | None) -> None:
    """Run Bastion on the embedded default with a demo app, user and upstream behind the
    gateway, and say what to open."""
    upstream_port = upstream_port or port + 1
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = directory / "bastion.toml"
    config.write_text(demo_config(port, upstream_port), encoding="utf-8")
    settings = override_server(wiring.load(config, environ={}), port=port)
    asyncio.run(wiring.migrate(settings))
    user_id = asyncio.run(_demo_user(settings, directory))
    verifier = secrets.token_urlsafe(48)
    _secret_file(directory / "demo-pkce-verifier.txt", verifier)
    base = settings.issuer
    authorize = f"{base}/authorize?" + urlencode(
        {
            "client_id": "demo-app",
            "redirect_uri": "http://127.0.0.1:8765/callback",
            "response_type": "code",
            "scope": "openid profile notes:read notes:write",
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
        f'  gateway      POST {base}/api/notes  {{"title": ...}}, GET {base}/api/notes/ID,\n'
        f"               GET {base}/api/users/{user_id}/notes  (Authorization: Bearer <token>)\n"
        f"  upstream     http://127.0.0.1:{upstream_port}  (naive on purpose: try /debug/config "
        "and /notes/1 there, then through the gateway)\n"
        f"  config       {config.resolve()}  (check it with `bastion check -c {config}`)\n",
        soft_wrap=True,
    )
    with notes_service(upstream_port):
        run_server(settings, config)
