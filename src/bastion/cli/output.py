"""Shared CLI plumbing: exit codes, ``--json`` output, error translation, and printing.

Output is printed so that values meant to be copied (links, ids, key ids, paths, URLs)
survive the copy: lines are written as they are, never wrapped, cropped or ellipsised
to the terminal's width (``print_line``; tables in ``bastion.cli.tables``).

Exit codes (stable, for scripts):

== ==================================================
0  success
1  the operation failed
2  invalid configuration or usage
3  a store is unreachable, or the schema is not current
4  the master key or key ring refused the operation
5  the named object does not exist
== ==================================================
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click
import orjson
from rich.console import Console

from bastion import wiring
from bastion.config import Settings
from bastion.config_source import ConfigSource, Origin
from bastion.errors import (
    BastionError,
    ConfigError,
    KeyRingError,
    NotFound,
    SchemaNotCurrent,
    StoreError,
    StoreUnavailable,
)

OK, FAILURE, CONFIG, STORE, KEYS, NOT_FOUND = 0, 1, 2, 3, 4, 5

WRONG_DATABASE_HINT = (
    "if this is not the database you meant, point at the right one: -c FILE or "
    "BASTION_CONFIG=FILE (its data_dir or database.url), or BASTION_DATABASE_URL=URL"
)

if TYPE_CHECKING:
    from bastion.runtime import Runtime

P = ParamSpec("P")
R = TypeVar("R")

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)

config_option = click.option(
    "--config",
    "-c",
    "config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Path to bastion.toml (default: $BASTION_CONFIG, else ./bastion.toml or the nearest "
    "in a parent directory, else built-in defaults).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def print_line(text: str, *, err: bool = False) -> None:
    """Text as it is: no markup, and no line break a console would add at its width."""
    click.echo(text, err=err)


def iso(timestamp: float | None) -> str | None:
    """A timestamp as ISO 8601 in UTC to the second (``2025-06-01T12:00:00Z``), for tables
    and JSON alike; None stays None."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
    return moment.removesuffix("+00:00") + "Z"


def config_from(option: Path | None) -> ConfigSource:
    """The configuration to use; says on stderr which one when ``--config`` was not given.

    Stderr, so that standard output stays the command's answer for scripts.
    """
    source = wiring.find_config(option)
    if source.origin is not Origin.OPTION:
        print_line(source.describe(), err=True)
    return source


def settings_from(option: Path | None) -> Settings:
    return wiring.load(config_from(option))


def exit_code_for(exc: BastionError) -> int:
    if isinstance(exc, ConfigError):
        return CONFIG
    if isinstance(exc, NotFound):
        return NOT_FOUND
    if isinstance(exc, KeyRingError):
        return KEYS
    if isinstance(exc, StoreUnavailable | SchemaNotCurrent):
        return STORE
    if isinstance(exc, StoreError):
        return FAILURE
    return FAILURE


def fail(exc: BastionError | click.ClickException, as_json: bool) -> NoReturn:
    """Print the error (JSON on stdout with ``--json``) and exit with its code."""
    if isinstance(exc, click.ClickException):
        code, name, message = FAILURE, "Refused", exc.format_message()
    else:
        code, name, message = exit_code_for(exc), type(exc).__name__, str(exc)
    problems = exc.problems if isinstance(exc, ConfigError) else []
    hint = WRONG_DATABASE_HINT if isinstance(exc, SchemaNotCurrent) else None
    if as_json:
        print_json(
            {
                "ok": False,
                "error": name,
                "message": message if not problems else "invalid configuration",
                "problems": [
                    {"path": p.path, "line": p.line, "message": p.message} for p in problems
                ],
            }
            | ({"hint": hint} if hint else {})
        )
    elif problems:
        print_line(f"error: {len(problems)} configuration problem(s):", err=True)
        for problem in problems:
            print_line(f"  {problem}", err=True)
    else:
        print_line(f"error: {message}", err=True)
        if hint:
            print_line(f"hint: {hint}", err=True)
    raise SystemExit(code)


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn Bastion's errors and refusals into a message and the documented exit code.

    A usage error (a missing or contradictory option) stays click's, with the usage line
    and exit code 2; anything refused after the command line was understood, a weak
    password say, is a plain error with exit code 1.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except click.UsageError:
            raise
        except (BastionError, click.ClickException) as exc:
            fail(exc, bool(kwargs.get("as_json", False)))

    return wrapper


def with_runtime(
    settings: Settings, action: Callable[[Runtime], Awaitable[R]], *, read_only: bool = False
) -> R:
    """Run one admin action against an opened runtime (stores, key ring, services).

    ``read_only`` for commands that only look: they create no database, master key or
    audit file, wherever the configuration points.
    """

    async def run() -> R:
        async with wiring.open_runtime(settings, key_ring="load", read_only=read_only) as runtime:
            return await action(runtime)

    return asyncio.run(run())


def many(values: tuple[str, ...]) -> tuple[str, ...] | None:
    """A repeatable option: None when not given at all, so "unchanged" differs from "empty"."""
    return values or None
