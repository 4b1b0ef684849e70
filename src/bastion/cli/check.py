"""``bastion check``: validate a configuration file without starting anything."""

from __future__ import annotations

from pathlib import Path

import click

from bastion import wiring
from bastion.authserver.lint import oauth_warnings
from bastion.cli.output import (
    CONFIG,
    config_from,
    config_option,
    handles_errors,
    json_option,
    print_json,
    print_line,
)
from bastion.config import Settings
from bastion.gateway.explain import explain_route
from bastion.gateway.lint import gateway_warnings
from bastion.store.sql.sqlite_files import permission_warnings


@click.command()
@config_option
@json_option
@click.option("--strict", is_flag=True, help="Treat warnings as problems (exit 2).")
@click.option(
    "--explain",
    "route",
    metavar="ROUTE",
    help="Print the steps a gateway route runs, in order (its name or 'METHODS path').",
)
@handles_errors
def check(config: Path | None, as_json: bool, strict: bool, route: str | None) -> None:
    """Validate the configuration; print every problem with its key path. Exit 2 on error.

    Warnings (a refresh grace window, overlapping gateway routes, upstreams without declared
    timeouts, plain-HTTP upstreams, public write routes, untyped object ids, an SQLite
    database or data directory that others can read) are printed too, and fail the check
    with --strict.
    """
    source = config_from(config)
    settings = wiring.load(source)
    if route is not None:
        _explain(settings, route, as_json)
        return
    warnings = [
        *oauth_warnings(settings.oauth, production=settings.is_production),
        *gateway_warnings(settings.gateway),
        *permission_warnings(settings.database_url),
    ]
    failed = strict and bool(warnings)
    if as_json:
        print_json(
            {
                "ok": not failed,
                "config": str(source),
                "environment": settings.environment,
                "warnings": [
                    {"path": w.path, "line": w.line, "message": w.message} for w in warnings
                ],
            }
        )
    else:
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        if not failed:
            print_line(f"{click.style('ok', fg='green')}: {source} ({settings.environment})")
    if failed:
        raise SystemExit(CONFIG)


def _explain(settings: Settings, name: str, as_json: bool) -> None:
    found = explain_route(settings.gateway, settings.server.max_body_bytes, name)
    if as_json:
        steps = [{"step": step, "phases": list(phases)} for step, phases in found.steps]
        print_json({"route": found.label, "upstream": found.target, "steps": steps})
        return
    print_line(f"route {found.label} -> {found.target}")
    for number, (step, phases) in enumerate(found.steps, 1):
        print_line(f"{number:>3}. {step:<22} {', '.join(phases)}")
