"""Shared CLI plumbing: exit codes, ``--json`` output, error translation.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click
import orjson
from rich.console import Console

from bastion import wiring
from bastion.config import Settings
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

if TYPE_CHECKING:
    from bastion.wiring import Runtime

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
    help="Path to bastion.toml (default: $BASTION_CONFIG, else built-in defaults).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


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


def fail(exc: BastionError, as_json: bool) -> NoReturn:
    code = exit_code_for(exc)
    problems = exc.problems if isinstance(exc, ConfigError) else []
    if as_json:
        print_json(
            {
                "ok": False,
                "error": type(exc).__name__,
                "message": str(exc) if not problems else "invalid configuration",
                "problems": [
                    {"path": p.path, "line": p.line, "message": p.message} for p in problems
                ],
            }
        )
    elif problems:
        click.echo(f"error: {len(problems)} configuration problem(s):", err=True)
        for problem in problems:
            click.echo(f"  {problem}", err=True)
    else:
        click.echo(f"error: {exc}", err=True)
    raise SystemExit(code)


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn Bastion's errors into a message and the documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except BastionError as exc:
            fail(exc, bool(kwargs.get("as_json", False)))

    return wrapper


def with_runtime(settings: Settings, action: Callable[[Runtime], Awaitable[R]]) -> R:
    """Run one admin action against an opened runtime (stores, key ring, services)."""

    async def run() -> R:
        async with wiring.open_runtime(settings, key_ring="load") as runtime:
            return await action(runtime)

    return asyncio.run(run())


def many(values: tuple[str, ...]) -> tuple[str, ...] | None:
    """A repeatable option: None when not given at all, so "unchanged" differs from "empty"."""
    return values or None
