"""Entry point of the ``bastion`` console script."""

from __future__ import annotations

import logging

import click

from bastion import __version__
from bastion.cli.check import check
from bastion.cli.db import db
from bastion.cli.keys import keys
from bastion.cli.serve import demo, serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bastion")
def cli() -> None:
    """Bastion: the hardened backend between mobile apps and their APIs."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Alembic narrates every connection it configures; our own messages say what matters.
    logging.getLogger("alembic").setLevel(logging.WARNING)


cli.add_command(check)
cli.add_command(db)
cli.add_command(keys)
cli.add_command(serve)
cli.add_command(demo)


def main() -> None:
    cli()
