"""``bastion devices``: the app installations that attested, and revoking one (a stolen
phone, a cloned app) with every token it holds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bastion.authserver.devices import describe, get_device, revoke_device
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
from bastion.cli.tables import Column, print_fields, print_rows, wide_option
from bastion.device.records import Device
from bastion.runtime import Runtime

OPERATOR = "operator:cli"
DEFAULT_REASON = "revoked by an operator"
TIMES = ("first_seen", "last_seen", "attested_at", "revoked_at")


def view(device: Device) -> dict[str, Any]:
    """A device for the CLI: ``describe`` with ISO 8601 times."""
    described = describe(device)
    return described | {name: iso(described[name]) for name in TIMES}


def _date(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")


def _ago(seconds: float) -> str:
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now" if seconds >= 0 else "in the future"


def _when(timestamp: float, now: float) -> str:
    """``2026-12-07 04:30:12 UTC (3 hours ago)``: the moment, and how long ago it was."""
    moment = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{moment} ({_ago(now - timestamp)})"


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "none"
    return "none" if value is None else str(value)


async def _user_id(runtime: Runtime, user: str | None) -> str | None:
    """A username's id; anything else is taken as a user id already."""
    if user is None:
        return None
    found = await runtime.auth.users.by_username(user)
    return user if found is None else found.user_id


@click.group()
def devices() -> None:
    """Attested app installations: list, show, revoke."""


@devices.command("list")
@click.option("--user", default=None, help="Only devices this user (username or id) used.")
@click.option(
    "--client", "client_id", default=None, help="Only devices of this client (app or registered)."
)
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked devices.")
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    help="At most this many, most recently seen first.",
)
@config_option
@json_option
@wide_option
@handles_errors
def list_devices(
    user: str | None,
    client_id: str | None,
    include_revoked: bool,
    limit: int,
    config: Path | None,
    as_json: bool,
    wide: bool,
) -> None:
    """List devices, most recently seen first (--wide: with version, users, counter and
    revocation)."""

    async def action(runtime: Runtime) -> list[Device]:
        return await runtime.auth.devices.list_devices(
            user_id=await _user_id(runtime, user),
            client_id=client_id,
            include_revoked=include_revoked,
            limit=limit,
        )

    found = with_runtime(settings_from(config), action, read_only=True)
    if as_json:
        print_json({"devices": [view(d) for d in found]})
        return
    print_rows(
        (
            Column("DEVICE ID"),
            Column("PLATFORM"),
            Column("CLIENT"),
            Column("LEVEL"),
            Column("LAST SEEN"),
            Column("VERSION", wide_only=True),
            Column("USERS", wide_only=True),
            Column("COUNTER", wide_only=True),
            Column("REVOKED", wide_only=True),
        ),
        [
            (
                d.device_id,
                d.platform,
                d.client_id,
                d.level,
                _date(d.last_seen),
                d.app_version or "",
                str(len(d.user_ids)),
                str(d.counter),
                "no" if d.revoked_at is None else _date(d.revoked_at),
            )
            for d in found
        ],
        wide=wide,
        empty="no devices" if include_revoked else "no devices (--all includes revoked ones)",
    )


@devices.command()
@click.argument("device_id")
@config_option
@json_option
@handles_errors
def show(device_id: str, config: Path | None, as_json: bool) -> None:
    """Show a device: what attested it, when it was seen, its users and keys."""

    async def action(runtime: Runtime) -> tuple[Device, float]:
        return await get_device(runtime.auth, device_id), runtime.clock.now()

    device, now = with_runtime(settings_from(config), action, read_only=True)
    if as_json:
        print_json(view(device))
        return
    print_fields(_fields(device, now))


def _fields(device: Device, now: float) -> list[tuple[str, str]]:
    fields = [
        ("device id", device.device_id),
        ("platform", device.platform),
        ("client", device.client_id),
        ("registered client", _text(device.registered_client_id)),
        ("level", device.level),
        ("app version", _text(device.app_version)),
    ]
    if device.key_id is not None:
        fields += [
            ("app attest key", device.key_id),
            ("environment", _text(device.environment)),
        ]
    if device.verdict is not None:
        fields += [(f"verdict {name}", _text(value)) for name, value in device.verdict.items()]
    fields += [
        ("counter", str(device.counter)),
        ("dpop jkt", _text(device.dpop_jkt)),
        ("encryption key", _text(device.encryption_key is not None)),
    ]
    fields += [("user", user_id) for user_id in device.user_ids] or [("users", "none")]
    fields += [
        ("first seen", _when(device.first_seen, now)),
        ("last seen", _when(device.last_seen, now)),
        ("attested", _when(device.attested_at, now)),
    ]
    if device.revoked_at is None:
        fields.append(("revoked", "no"))
    else:
        fields += [
            ("revoked", _when(device.revoked_at, now)),
            ("revoked because", _text(device.revoked_reason)),
        ]
    return fields


@devices.command()
@click.argument("device_id")
@click.option(
    "--reason",
    default=DEFAULT_REASON,
    show_default=True,
    help="Why, for the record and the audit trail (at most 200 characters).",
)
@config_option
@json_option
@handles_errors
def revoke(device_id: str, reason: str, config: Path | None, as_json: bool) -> None:
    """Stolen phone or cloned app: revoke the device and every token it holds.

    Its refresh tokens and their access tokens stop working at once, a client it
    registered is disabled, and its DPoP key no longer stands for an attested device.
    Revoking a revoked device again finishes a revocation that was interrupted.
    """

    async def action(runtime: Runtime) -> dict[str, Any]:
        done = await revoke_device(runtime.auth, device_id, reason, OPERATOR)
        return {
            "ok": True,
            "device_id": device_id,
            "already_revoked": done.already_revoked,
            "families": done.families,
        }

    answer = with_runtime(settings_from(config), action)
    if as_json:
        print_json(answer)
        return
    families = answer["families"]
    tokens = f"{families} refresh token famil{'y' if families == 1 else 'ies'}"
    if answer["already_revoked"]:
        print_line(f"device {device_id} was already revoked; revoked {tokens} still live")
    else:
        print_line(f"revoked device {device_id} and {tokens} with their access tokens")
