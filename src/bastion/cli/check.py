"""``bastion check``: validate a configuration file without starting anything."""

from __future__ import annotations

from pathlib import Path

import click

from bastion import wiring
from bastion.cli.output import config_option, handles_errors, json_option, out_console, print_json


@click.command()
@config_option
@json_option
@handles_errors
def check(config: Path | None, as_json: bool) -> None:
    """Validate the configuration; print every problem with its key path. Exit 2 on error."""
    settings = wiring.load(config)
    source = wiring.config_source(config)
    if as_json:
        print_json({"ok": True, "config": source, "environment": settings.environment})
    else:
        out_console.print(f"[green]ok[/]: {source} ({settings.environment})", markup=True)
