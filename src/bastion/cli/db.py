"""``bastion db``: schema migrations, and deleting expired rows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.progress import Progress

from bastion import wiring
from bastion.cli.output import (
    STORE,
    WRONG_DATABASE_HINT,
    config_option,
    err_console,
    handles_errors,
    json_option,
    print_json,
    print_line,
    settings_from,
)
from bastion.cli.tables import print_fields
from bastion.clock import SystemClock
from bastion.store.sql.database import Database
from bastion.store.sql.pruning import prune_expired


@click.group()
def db() -> None:
    """Database schema: status and upgrade; deleting expired rows."""


@db.command()
@config_option
@json_option
@handles_errors
def upgrade(config: Path | None, as_json: bool) -> None:
    """Apply every pending migration (one transaction each)."""
    settings = settings_from(config)

    async def run() -> tuple[list[str], str | None, str]:
        database = wiring.open_database(settings)
        try:
            current = await database.current_revision()
            pending = database.pending_revisions(current)
            # A bar is for a person watching; in a log it is noise (the summary follows).
            quiet = as_json or not pending or not err_console.is_terminal
            with Progress(console=err_console, disable=quiet) as progress:
                task = progress.add_task("migrating", total=len(pending))
                applied = await database.upgrade(lambda _rev: progress.advance(task))
            return applied, await database.current_revision(), database.name
        finally:
            await database.close()

    applied, revision, name = asyncio.run(run())
    if as_json:
        print_json({"ok": True, "applied": applied, "revision": revision, "database": name})
    elif applied:
        print_line(f"{name} is at revision {revision}: applied {len(applied)} migration(s).")
    else:
        print_line(f"{name} was already up to date (revision {revision}).")


@db.command()
@config_option
@json_option
@handles_errors
def status(config: Path | None, as_json: bool) -> None:
    """Say whether the schema is current. Exit 3 when it is not. Creates nothing."""
    settings = settings_from(config)

    async def run() -> tuple[str | None, Database]:
        database = wiring.open_database(settings, create=False)
        try:
            return await database.current_revision(), database
        finally:
            await database.close()

    current, database = asyncio.run(run())
    head = database.head_revision()
    problem = database.schema_problem(current)
    if as_json:
        print_json(
            {
                "database": database.name,
                "url": database.safe_url,
                "exists": not database.missing,
                "current": current,
                "head": head,
                "up_to_date": problem is None,
                "problem": problem,
            }
        )
    elif problem is None:
        print_line(f"{database.name} is up to date (revision {head}).")
    else:
        print_line(f"{problem}.")
        print_line(f"hint: {WRONG_DATABASE_HINT}", err=True)
    if problem is not None:
        raise SystemExit(STORE)


@db.command()
@config_option
@json_option
@handles_errors
def prune(config: Path | None, as_json: bool) -> None:
    """Delete expired rows now; print how many per table.

    Access token records, authorization codes, refresh families, browser sessions,
    recovery tickets and idempotency records, once nothing needs them (docs/operations.md).
    bastion serve does the same every database.prune_interval.
    """
    settings = settings_from(config)

    async def run() -> dict[str, int]:
        database = wiring.open_database(settings, create=False)
        try:
            await database.require_current_schema()
            return await prune_expired(
                database, SystemClock().now(), max_token_lifetime=settings.keys.max_token_lifetime
            )
        finally:
            await database.close()

    counts = asyncio.run(run())
    if as_json:
        print_json({"ok": True, "deleted": counts})
        return
    print_line(f"deleted {sum(counts.values())} expired row(s)")
    print_fields([(table, str(n)) for table, n in counts.items()])
