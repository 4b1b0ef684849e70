"""Entry point of the ``bastion`` console script.

Command groups are imported when they are run, not when ``bastion --help`` lists them:
the stores, the key ring and the gateway pull in SQLAlchemy, pydantic and aiohttp,
which a listing (or ``bastion check``'s siblings) does not need.
"""

from __future__ import annotations

import importlib

import click

from bastion import __version__, logs

# name: (module, attribute, the one-line help ``bastion --help`` shows).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "check": ("bastion.cli.check", "check", "Validate the configuration; explain a route."),
    "clients": (
        "bastion.cli.clients",
        "clients",
        "OAuth clients: create, list, show, update, disable, delete.",
    ),
    "db": ("bastion.cli.db", "db", "Database schema: status and upgrade; deleting expired rows."),
    "devices": (
        "bastion.cli.devices",
        "devices",
        "Attested app installations: list, show, revoke.",
    ),
    "demo": ("bastion.cli.demo", "demo", "Run Bastion with a demo app, user and upstream."),
    "keys": ("bastion.cli.keys", "keys", "Signing keys: list, rotate, retire; a master key."),
    "serve": ("bastion.cli.serve", "serve", "Serve Bastion."),
    "users": ("bastion.cli.users", "users", "User accounts, sessions, policies and recovery."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = COMMANDS.get(cmd_name)
        if found is None:
            return None
        module, attribute, _ = found
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, summary) for name, (_, _, summary) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bastion")
def cli() -> None:
    """Bastion: the hardened backend between mobile apps and their APIs."""
    logs.configure()


def main() -> None:
    cli()
