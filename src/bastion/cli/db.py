"""``bastion db``: database schema migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.progress import Progress

from bastion import wiring
from bastion.cli.output import (
    config_option,
    err_console,
    handles_errors,
    json_option,
    print_json,
    print_line,
)


@click.group()
def db() -> None:
    """Database schema: status and upgrade."""


@db.command()
@config_option
@json_option
@handles_errors
def upgrade(config: Path | None, as_json: bool) -> None:
    """Apply every pending migration (one transaction each)."""
    settings = wiring.load(config)

    async def run() -> tuple[list[str], str | None]:
        database = wiring.open_database(settings)
        try:
            current = await database.current_revision()
            pending = database.pending_revisions(current)
            with Progress(console=err_console, disable=as_json or not pending) as progress:
                task = progress.add_task("migrating", total=len(pending))
                applied = await database.upgrade(lambda _rev: progress.advance(task))
            return applied, await database.current_revision()
        finally:
            await database.close()

    applied, revision = asyncio.run(run())
    if as_json:
        print_json({"ok": True, "applied": applied, "revision": revision})
    elif applied:
        print_line(f"applied {len(applied)} migration(s); schema at revision {revision}")
    else:
        print_line(f"schema already current at revision {revision}")


@db.command()
@config_option
@json_option
@handles_errors
def status(config: Path | None, as_json: bool) -> None:
    """Show the schema revision and whether it is current. Exit 3 when it is not."""
    settings = wiring.load(config)

    async def run() -> tuple[str | None, str, str]:
        database = wiring.open_database(settings)
        try:
            return await database.current_revision(), database.head_revision(), database.safe_url
        finally:
            await database.close()

    current, head, url = asyncio.run(run())
    if as_json:
        print_json({"current": current, "head": head, "up_to_date": current == head, "url": url})
    else:
        print_line(f"database {url}: revision {current or 'none'} (head {head})")
    if current != head:
        raise SystemExit(3)
