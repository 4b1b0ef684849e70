"""``bastion demo``: Bastion on the embedded default, with the notes service behind its
gateway and a demo app to try them in a browser (``bastion.demo``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from bastion import wiring
from bastion.cli.output import handles_errors, print_line
from bastion.cli.serve import override_server, preflight
from bastion.demo import launch, users

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


def announce(demo: launch.Demo, directory: Path, config: Path) -> None:
    """What to open, one URL a line and none wrapped: the demo app first, as the start."""
    base = demo.settings.issuer
    password = users.password_file(directory, users.DEMO_USER)
    print_line(
        f"""
Bastion demo (development; data in {directory})

  Open the demo app:  {demo.app_origin}/
  and sign in as {users.DEMO_USER}, password in {password}

  Bastion      {base}
  account      {base}/account
  discovery    {base}/.well-known/openid-configuration
  public keys  {base}/jwks.json
  health       {base}/healthz  {base}/readyz
  gateway      {demo.gateway}  (routes in {config})
  upstream     {demo.upstream}  (naive on purpose: /debug/config)

Bastion's access log follows. Ctrl-C stops the demo.
""",
        err=True,
    )


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".demo"),
    show_default=True,
    help="Where the demo keeps its data.",
)
@click.option("--port", type=int, default=8000, show_default=True, help="Port of Bastion.")
@click.option(
    "--upstream-port", type=int, default=None, help="Port of the demo upstream (default: port+1)."
)
@click.option("--app-port", type=int, default=8765, show_default=True, help="Port of the demo app.")
@handles_errors
def demo(directory: Path, port: int, upstream_port: int | None, app_port: int) -> None:
    """Run Bastion on the embedded default with the notes service behind its gateway and
    a demo app that signs in and calls it, and say what to open."""
    upstream_port = upstream_port or port + 1
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = directory / "bastion.toml"
    config.write_text(demo_config(port, upstream_port), encoding="utf-8")
    settings = override_server(wiring.load(config, environ={}), port=port)
    try:
        sockets = launch.sockets_for(settings, app_port, upstream_port)
    except OSError as exc:
        raise click.ClickException(
            f"{exc.strerror}: choose other ports with --port, --app-port or --upstream-port"
        ) from exc
    with sockets[0], sockets[1], notes_service(upstream_port):
        asyncio.run(wiring.migrate(settings))
        user_ids = asyncio.run(users.prepare(settings, directory))
        asyncio.run(preflight(settings))
        running = launch.Demo(settings, directory, user_ids, upstream_port, app_port)
        asyncio.run(launch.run(running, sockets, lambda: announce(running, directory, config)))
