"""``bastion users``: accounts, and revoking everything a user holds (a lost phone)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from bastion.accounts.levels import Policy
from bastion.accounts.records import User
from bastion.authserver.accounts import Accounts, describe
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
from bastion.errors import NotFound, WeakPassword
from bastion.runtime import Runtime

OPERATOR = "operator:cli"


async def _user(runtime: Runtime, username: str) -> User:
    user = await runtime.auth.users.by_username(username)
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def view(user: User) -> dict[str, Any]:
    """A user for the CLI: ``describe`` with ISO 8601 times; no revocation yet is None."""
    return describe(user) | {
        "created_at": iso(user.created_at),
        "tokens_valid_after": iso(user.tokens_valid_after or None),
    }


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _text(value: object) -> str:
    if isinstance(value, bool):
        return _yes(value)
    return "none" if value is None else str(value)


def _done(as_json: bool, data: dict[str, Any], message: str) -> None:
    if as_json:
        print_json(data)
    else:
        print_line(message)


@click.group()
def users() -> None:
    """User accounts: create, list, show, disable, enable, delete, revoke-sessions, set-policy,
    recovery-link."""


@users.command()
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@config_option
@json_option
@handles_errors
def create(username: str, password_stdin: bool, config: Path | None, as_json: bool) -> None:
    """Create a user; the password comes from stdin, never from the command line."""
    if not password_stdin:
        raise click.UsageError("pass --password-stdin and the password on standard input")
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise click.UsageError("the password read from standard input is empty")

    async def action(runtime: Runtime) -> User:
        try:
            return await Accounts(runtime.auth, OPERATOR).create(username, password)
        except WeakPassword as exc:
            # A refusal, not a misuse of the command: exit 1, without the usage text.
            raise click.ClickException(f"password refused: {exc}") from exc

    user = with_runtime(settings_from(config), action)
    _done(as_json, view(user), f"created user {username} ({user.user_id})")


@users.command("list")
@config_option
@json_option
@wide_option
@handles_errors
def list_users(config: Path | None, as_json: bool, wide: bool) -> None:
    """List users (--wide: with their policy and creation time)."""
    found = with_runtime(
        settings_from(config), lambda runtime: runtime.auth.users.list(), read_only=True
    )
    if as_json:
        print_json({"users": [view(u) for u in found]})
        return
    print_rows(
        (
            Column("USERNAME"),
            Column("USER ID"),
            Column("ENABLED"),
            Column("POLICY", wide_only=True),
            Column("CREATED", wide_only=True),
        ),
        [
            (u.username, u.user_id, _yes(u.enabled), u.auth_policy, iso(u.created_at) or "")
            for u in found
        ],
        wide=wide,
        empty="no users",
    )


@users.command()
@click.argument("username")
@config_option
@json_option
@handles_errors
def show(username: str, config: Path | None, as_json: bool) -> None:
    """Show a user and the apps they consented to."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        user = await _user(runtime, username)
        consents = await runtime.auth.consents.of_subject(user.user_id)
        return view(user) | {"consents": {k: sorted(v) for k, v in sorted(consents.items())}}

    data = with_runtime(settings_from(config), action, read_only=True)
    if as_json:
        print_json(data)
        return
    fields = [(name, _text(value)) for name, value in data.items() if name != "consents"]
    consents = [(client, " ".join(scopes)) for client, scopes in data["consents"].items()]
    fields += [("consent", f"{client}: {scopes}") for client, scopes in consents] or [
        ("consents", "none")
    ]
    print_fields(fields)


def _set_enabled(username: str, enabled: bool, config: Path | None, as_json: bool) -> None:
    async def action(runtime: Runtime) -> None:
        await Accounts(runtime.auth, OPERATOR).set_enabled(await _user(runtime, username), enabled)

    with_runtime(settings_from(config), action)
    state = "enabled" if enabled else "disabled"
    _done(
        as_json, {"ok": True, "username": username, "enabled": enabled}, f"{state} user {username}"
    )


@users.command()
@click.argument("username")
@config_option
@json_option
@handles_errors
def disable(username: str, config: Path | None, as_json: bool) -> None:
    """Disable a user and revoke every session and token they hold."""
    _set_enabled(username, False, config, as_json)


@users.command()
@click.argument("username")
@config_option
@json_option
@handles_errors
def enable(username: str, config: Path | None, as_json: bool) -> None:
    """Enable a disabled user."""
    _set_enabled(username, True, config, as_json)


@users.command("revoke-sessions")
@click.argument("username")
@config_option
@json_option
@handles_errors
def revoke_sessions(username: str, config: Path | None, as_json: bool) -> None:
    """Lost phone: end every session and revoke every token the user holds."""

    async def action(runtime: Runtime) -> dict[str, int]:
        return await Accounts(runtime.auth, OPERATOR).revoke_all(await _user(runtime, username))

    counts = with_runtime(settings_from(config), action)
    _done(
        as_json,
        {"ok": True, "username": username, **counts},
        f"revoked {counts['sessions']} session(s), {counts['families']} refresh token "
        f"famil{'y' if counts['families'] == 1 else 'ies'}, {counts['access_tokens']} "
        f"access token(s) of {username}",
    )


@users.command("revoke-consent")
@click.argument("username")
@click.option("--client", "client_id", default=None, help="Only this client (default: all).")
@config_option
@json_option
@handles_errors
def revoke_consent(
    username: str, client_id: str | None, config: Path | None, as_json: bool
) -> None:
    """Forget the user's consent, so the app must ask again; its refresh tokens end too."""

    async def action(runtime: Runtime) -> int:
        user = await _user(runtime, username)
        removed = await runtime.auth.consents.revoke(user.user_id, client_id)
        selector = {"subject": user.user_id} | ({"client_id": client_id} if client_id else {})
        await runtime.auth.access.revoke_families("consent_revoked", OPERATOR, **selector)
        return removed

    removed = with_runtime(settings_from(config), action)
    _done(
        as_json,
        {"ok": True, "username": username, "revoked": removed},
        f"revoked {removed} consent(s) of {username}",
    )


@users.command()
@click.argument("username")
@config_option
@json_option
@handles_errors
def delete(username: str, config: Path | None, as_json: bool) -> None:
    """Delete a user: revoke everything they hold, forget their consents, remove the account."""

    async def action(runtime: Runtime) -> None:
        await Accounts(runtime.auth, OPERATOR).delete(await _user(runtime, username))

    with_runtime(settings_from(config), action)
    _done(as_json, {"ok": True, "username": username, "deleted": True}, f"deleted user {username}")


@users.command("set-policy")
@click.argument("username")
@click.argument("policy", type=click.Choice([p.value for p in Policy]))
@config_option
@json_option
@handles_errors
def set_policy(username: str, policy: str, config: Path | None, as_json: bool) -> None:
    """Require a sign-in level for this user: password, mfa or passkey."""

    async def action(runtime: Runtime) -> None:
        # A policy the user cannot meet yet is refused (AccountRuleError, exit 1).
        await Accounts(runtime.auth, OPERATOR).set_policy(
            await _user(runtime, username), Policy(policy)
        )

    with_runtime(settings_from(config), action)
    _done(
        as_json,
        {"ok": True, "username": username, "auth_policy": policy},
        f"{username} now signs in at policy {policy}",
    )


@users.command("recovery-link")
@click.argument("username")
@click.option(
    "--reset-mfa",
    is_flag=True,
    help="Also remove the user's authenticator app, recovery codes and passkeys.",
)
@config_option
@json_option
@handles_errors
def recovery_link(username: str, reset_mfa: bool, config: Path | None, as_json: bool) -> None:
    """Print a one-time link that lets the user set a new password.

    Hand it to the user over a channel you trust; it works once, until
    accounts.recovery_link_lifetime passes.
    """

    async def action(runtime: Runtime) -> str:
        return await Accounts(runtime.auth, OPERATOR).recovery_link(
            await _user(runtime, username), reset_mfa=reset_mfa
        )

    link = with_runtime(settings_from(config), action)
    _done(as_json, {"ok": True, "username": username, "link": link, "reset_mfa": reset_mfa}, link)
