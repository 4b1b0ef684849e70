"""Entry point of the ``bastion`` console script."""

from __future__ import annotations

import click

from bastion import __version__, logs
from bastion.cli.check import check
from bastion.cli.clients import clients
from bastion.cli.db import db
from bastion.cli.demo import demo
from bastion.cli.keys import keys
from bastion.cli.serve import serve
from bastion.cli.users import users


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bastion")
def cli() -> None:
    """Bastion: the hardened backend between mobile apps and their APIs."""
    logs.configure()


cli.add_command(check)
cli.add_command(db)
cli.add_command(keys)
cli.add_command(clients)
cli.add_command(users)
cli.add_command(serve)
cli.add_command(demo)


def main() -> None:
    cli()
