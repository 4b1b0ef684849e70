"""``bastion keys``: the signing key ring and the master key."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, TypeVar

import click

from bastion.audit import AuditEvent, Outcome
from bastion.cli.output import (
    config_option,
    handles_errors,
    iso,
    json_option,
    print_json,
    print_line,
    settings_from,
    with_runtime,
)
from bastion.cli.tables import Column, print_rows, wide_option
from bastion.crypto.keyring import Algorithm, KeyRing, SigningKey
from bastion.crypto.settings import encode_master_key
from bastion.runtime import Runtime

T = TypeVar("T")
OPERATOR = "operator:cli"


def describe(key: SigningKey, ring: KeyRing, now: float) -> dict[str, Any]:
    published_until = None if key.retired_at is None else key.retired_at + ring.max_token_lifetime
    return {
        "kid": key.kid,
        "alg": key.alg,
        "state": str(ring.state(key, now)),
        "created_at": iso(key.created_at),
        "activates_at": iso(key.activates_at),
        "retired_at": iso(key.retired_at),
        "published_until": iso(published_until),
    }


@click.group()
def keys() -> None:
    """Signing keys: list, rotate, retire; create a master key."""


@keys.command("list")
@config_option
@json_option
@wide_option
@handles_errors
def list_keys(config: Path | None, as_json: bool, wide: bool) -> None:
    """List every key with its state (next, active, retired, expired) and when it signs.

    --wide adds the algorithm, which key signs now, and when each retires and leaves the
    published key set.
    """
    settings = settings_from(config)

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        ring, now = runtime.keys.ring, runtime.clock.now()
        signing = ring.signing_kid(now)
        return [describe(k, ring, now) | {"signing": k.kid == signing} for k in ring.keys]

    rows = with_runtime(settings, action, read_only=True)
    if as_json:
        print_json({"keys": rows})
        return
    # A key id (43 characters), its state and a time fill 80 columns.
    print_rows(
        (
            Column("KID"),
            Column("ALG", wide_only=True),
            Column("STATE"),
            Column("SIGNING", wide_only=True),
            Column("ACTIVATES"),
            Column("RETIRED", wide_only=True),
            Column("PUBLISHED UNTIL", wide_only=True),
        ),
        [
            (
                row["kid"],
                row["alg"],
                row["state"],
                "yes" if row["signing"] else "no",
                row["activates_at"],
                row["retired_at"] or "-",
                row["published_until"] or "-",
            )
            for row in rows
        ],
        wide=wide,
        empty="no signing keys yet: `bastion keys rotate` makes the first, and so does "
        "`bastion serve`",
    )


@keys.command()
@config_option
@json_option
@click.option(
    "--alg",
    type=click.Choice(["ES256", "Ed25519"]),
    default=None,
    help="Algorithm of the new key (default: keys.algorithm).",
)
@click.option(
    "--immediate",
    is_flag=True,
    help="Sign with the new key at once (emergency: verifiers may not have it yet).",
)
@handles_errors
def rotate(config: Path | None, as_json: bool, alg: Algorithm | None, immediate: bool) -> None:
    """Add a key: published now, signing after keys.publish_ahead; the old key retires then."""
    settings = settings_from(config)

    async def action(runtime: Runtime) -> dict[str, Any]:
        key = await runtime.keys.rotate(alg, immediate=immediate)
        runtime.audit.emit(
            AuditEvent(
                "keys.rotate",
                Outcome.SUCCESS,
                actor=OPERATOR,
                target=key.kid,
                details={"immediate": immediate},
            )
        )
        return describe(key, runtime.keys.ring, runtime.clock.now())

    row = with_runtime(settings, action)
    if as_json:
        print_json(row)
    else:
        print_line(
            f"new key {row['kid']} ({row['alg']}) published; signs from {row['activates_at']}"
        )


@keys.command()
@click.argument("kid")
@config_option
@json_option
@click.option(
    "--unpublish",
    is_flag=True,
    help="Compromised key: remove it from the JWKS now; its tokens stop verifying.",
)
@click.option("--force", is_flag=True, help="Allow retiring the only active signing key.")
@handles_errors
def retire(kid: str, config: Path | None, as_json: bool, unpublish: bool, force: bool) -> None:
    """Stop signing with KID; it stays published until its tokens have expired."""
    settings = settings_from(config)

    async def action(runtime: Runtime) -> dict[str, Any]:
        await runtime.keys.retire(kid, unpublish=unpublish, force=force)
        runtime.audit.emit(
            AuditEvent(
                "keys.retire",
                Outcome.SUCCESS,
                actor=OPERATOR,
                target=kid,
                details={"unpublish": unpublish, "force": force},
            )
        )
        ring = runtime.keys.ring
        return describe(ring.get(kid), ring, runtime.clock.now())

    row = with_runtime(settings, action)
    if as_json:
        print_json(row)
    else:
        print_line(f"key {kid} is {row['state']}; published until {row['published_until']}")


@keys.command("new-master-key")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="File to create (mode 0600); an existing file is never overwritten.",
)
@json_option
@handles_errors
def new_master_key(out: Path, as_json: bool) -> None:
    """Write a new random master key to a file, for BASTION_MASTER_KEY_FILE."""
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{out} exists; refusing to overwrite a master key") from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(encode_master_key(secrets.token_bytes(32)) + "\n")
    if as_json:
        print_json({"ok": True, "path": str(out)})
    else:
        print_line(f"master key written to {out}; set BASTION_MASTER_KEY_FILE={out}")
