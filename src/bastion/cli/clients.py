"""``bastion clients``: OAuth clients kept in the database (file-declared ones are read-only)."""

from __future__ import annotations

import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import orjson

from bastion.audit import AuditEvent, Outcome
from bastion.authserver.registration import operator_ceiling
from bastion.cli.output import (
    config_option,
    handles_errors,
    json_option,
    many,
    print_json,
    print_line,
    settings_from,
    with_runtime,
)
from bastion.cli.tables import Column, print_fields, print_rows, wide_option
from bastion.errors import NotFound, ReadOnlyClient
from bastion.oauth.clients import (
    AUTHORIZATION_CODE,
    BRANDING,
    CLIENT_CREDENTIALS,
    REFRESH_TOKEN,
    Branding,
    Client,
    check_client,
    hash_secret,
)
from bastion.runtime import Runtime

OPERATOR = "operator:cli"


def _show(client: Client) -> None:
    fields = []
    for name, value in client.to_metadata().items():
        # Lists as space-separated values and key sets as JSON, so each can be copied.
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, list):
            text = " ".join(map(str, value)) or "none"
        elif isinstance(value, dict):
            text = orjson.dumps(value).decode()
        else:
            text = "none" if value is None or value == "" else str(value)
        fields.append((name, text))
    print_fields(fields)


def _write_secret(path: Path) -> str:
    """A new secret written to ``path`` (0600, never overwriting); returns its hash."""
    secret = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; refusing to overwrite it") from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret + "\n")
    return hash_secret(secret)


async def _stored(runtime: Runtime, client_id: str) -> Client:
    if client_id in runtime.auth.clients.declared:
        raise ReadOnlyClient(f"client {client_id!r} is declared in bastion.toml; change it there")
    client = await runtime.auth.clients.store.get(client_id)
    if client is None:
        raise NotFound(f"no client {client_id!r}")
    return client


@click.group()
def clients() -> None:
    """OAuth clients: create, list, show, update, disable, delete."""


_metadata_options = [
    click.option("--name", default=None, help="Name shown on sign-in and consent pages."),
    click.option("--logo-uri", default=None, help="https URL of the app's logo (pages)."),
    click.option("--client-uri", default=None, help="https URL of the app's home page."),
    click.option("--policy-uri", default=None, help="https URL of its privacy policy."),
    click.option("--tos-uri", default=None, help="https URL of its terms of service."),
    click.option("--accent-color", default=None, help="#rrggbb of the pages' buttons."),
    click.option(
        "--redirect-uri", "redirect_uris", multiple=True, help="Redirect URI (repeat for several)."
    ),
    click.option("--scope", "scopes", multiple=True, help="Allowed scope (repeat)."),
    click.option("--grant-type", "grant_types", multiple=True, help="Allowed grant (repeat)."),
    click.option(
        "--resource", "resources", multiple=True, help="Allowed resource / audience URI (repeat)."
    ),
    click.option(
        "--require-par/--no-require-par",
        default=None,
        help="Require pushed authorization requests (RFC 9126).",
    ),
    click.option(
        "--dpop-bound/--no-dpop-bound",
        default=None,
        help="Require a DPoP proof on every token request (RFC 9449 §5.2).",
    ),
    click.option(
        "--require-dpop-nonce/--no-require-dpop-nonce",
        default=None,
        help="Require the server's nonce in this client's DPoP proofs (RFC 9449 §8).",
    ),
    click.option(
        "--introspection/--no-introspection",
        default=None,
        help="A resource server that may introspect tokens for its resources.",
    ),
    click.option(
        "--auth-policy",
        type=click.Choice(["password", "mfa", "passkey"]),
        default=None,
        help="Sign-in level this app's users must reach (default: password).",
    ),
    click.option(
        "--exchange-subject-audience",
        "exchange_subject_audiences",
        multiple=True,
        help="Token exchange: audience of a resource server this client operates, whose "
        "users' tokens it may exchange (repeat).",
    ),
    click.option(
        "--exchange-delegation-chains/--no-exchange-delegation-chains",
        default=None,
        help="Token exchange: accept subject tokens that already name an actor (act).",
    ),
]


def metadata_options(func: Any) -> Any:
    for option in reversed(_metadata_options):
        func = option(func)
    return func


@clients.command()
@click.argument("client_id")
@click.option(
    "--type",
    "client_type",
    type=click.Choice(["public", "confidential"]),
    default="public",
    show_default=True,
)
@click.option(
    "--auth-method",
    type=click.Choice(["client_secret_basic", "private_key_jwt"]),
    default=None,
    help="Confidential clients only (default: client_secret_basic).",
)
@click.option(
    "--jwks-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="The client's public keys, for private_key_jwt.",
)
@click.option(
    "--secret-out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="For client_secret_basic: write the generated secret to this new file.",
)
@metadata_options
@config_option
@json_option
@handles_errors
def create(
    client_id: str,
    client_type: str,
    auth_method: str | None,
    jwks_file: Path | None,
    secret_out: Path | None,
    name: str | None,
    redirect_uris: tuple[str, ...],
    scopes: tuple[str, ...],
    grant_types: tuple[str, ...],
    resources: tuple[str, ...],
    require_par: bool | None,
    dpop_bound: bool | None,
    require_dpop_nonce: bool | None,
    introspection: bool | None,
    auth_policy: str | None,
    exchange_subject_audiences: tuple[str, ...],
    exchange_delegation_chains: bool | None,
    config: Path | None,
    as_json: bool,
    **branding: str | None,
) -> None:
    """Create a client. A generated secret is written to --secret-out, never printed."""
    settings = settings_from(config)
    public = client_type == "public"
    method = "none" if public else (auth_method or "client_secret_basic")
    if method == "client_secret_basic" and secret_out is None:
        raise click.UsageError("client_secret_basic needs --secret-out FILE for the secret")
    jwks = orjson.loads(jwks_file.read_bytes()) if jwks_file else None
    default_grants = (AUTHORIZATION_CODE, REFRESH_TOKEN) if public else (CLIENT_CREDENTIALS,)
    # Metadata the client rules refuse is a refusal (ClientMetadataError, exit 1).
    client = check_client(
        Client(
            client_id=client_id,
            client_type="public" if public else "confidential",
            auth_method=method,  # type: ignore[arg-type]
            name=name or client_id,
            redirect_uris=redirect_uris,
            scopes=frozenset(scopes),
            grant_types=frozenset(grant_types or default_grants),
            resources=frozenset(resources),
            require_pushed_authorization_requests=bool(require_par),
            dpop_bound_access_tokens=bool(dpop_bound),
            require_dpop_nonce=bool(require_dpop_nonce),
            may_introspect=bool(introspection),
            auth_policy=auth_policy or "password",
            exchange_subject_audiences=frozenset(exchange_subject_audiences),
            exchange_delegation_chains=bool(exchange_delegation_chains),
            jwks=jwks,
            source="cli",
            branding=Branding.from_metadata(branding),
            # A placeholder until the secret is generated, after every other check passed.
            secret_hash=None if method != "client_secret_basic" else "0" * 64,
        )
    )

    async def action(runtime: Runtime) -> Client:
        if client_id in runtime.auth.clients.declared:
            raise ReadOnlyClient(f"client {client_id!r} is declared in bastion.toml")
        stored = client
        if method == "client_secret_basic":
            assert secret_out is not None
            stored = replace(client, secret_hash=_write_secret(secret_out))
        await runtime.auth.clients.store.create(stored, runtime.clock.now())
        runtime.audit.emit(
            AuditEvent("clients.create", Outcome.SUCCESS, actor=OPERATOR, target=client_id)
        )
        return stored

    created = with_runtime(settings, action)
    if as_json:
        print_json(created.to_metadata() | {"secret_file": str(secret_out) if secret_out else None})
    else:
        print_line(f"created client {client_id}")


@clients.command("list")
@config_option
@json_option
@wide_option
@handles_errors
def list_clients(config: Path | None, as_json: bool, wide: bool) -> None:
    """List every client, from the file and the database (--wide: with auth and grants)."""
    found = with_runtime(
        settings_from(config), lambda runtime: runtime.auth.clients.all(), read_only=True
    )
    if as_json:
        print_json({"clients": [c.to_metadata() for c in found]})
        return
    print_rows(
        (
            Column("CLIENT ID"),
            Column("TYPE"),
            Column("ENABLED"),
            Column("SOURCE"),
            Column("AUTH", wide_only=True),
            Column("GRANTS", wide_only=True),
        ),
        [
            (
                c.client_id,
                c.client_type,
                "yes" if c.enabled else "no",
                c.source,
                c.auth_method,
                ",".join(sorted(c.grant_types)),
            )
            for c in found
        ],
        wide=wide,
        empty="no clients",
    )


@clients.command()
@click.argument("client_id")
@config_option
@json_option
@handles_errors
def show(client_id: str, config: Path | None, as_json: bool) -> None:
    """Show one client's metadata."""

    async def action(runtime: Runtime) -> Client:
        client = await runtime.auth.clients.get(client_id)
        if client is None:
            raise NotFound(f"no client {client_id!r}")
        return client

    client = with_runtime(settings_from(config), action, read_only=True)
    if as_json:
        print_json(client.to_metadata())
    else:
        _show(client)


# --clear NAME: the list option it empties, and the Client field behind it.
CLEARABLE = {
    "redirect-uri": ("redirect_uris", ()),
    "scope": ("scopes", frozenset()),
    "grant-type": ("grant_types", frozenset()),
    "resource": ("resources", frozenset()),
    "exchange-subject-audience": ("exchange_subject_audiences", frozenset()),
    # Branding (RFC 7591 §2): cleared to "not set".
    **{name.replace("_", "-"): (name, None) for name in BRANDING},
}


@clients.command()
@click.argument("client_id")
@metadata_options
@click.option(
    "--clear",
    "cleared",
    multiple=True,
    type=click.Choice(sorted(CLEARABLE)),
    help="Empty that list, named as its option is (repeat for several).",
)
@click.option("--enable/--disable", "enabled", default=None)
@config_option
@json_option
@handles_errors
def update(
    client_id: str,
    name: str | None,
    redirect_uris: tuple[str, ...],
    scopes: tuple[str, ...],
    grant_types: tuple[str, ...],
    resources: tuple[str, ...],
    require_par: bool | None,
    dpop_bound: bool | None,
    require_dpop_nonce: bool | None,
    introspection: bool | None,
    auth_policy: str | None,
    exchange_subject_audiences: tuple[str, ...],
    exchange_delegation_chains: bool | None,
    cleared: tuple[str, ...],
    enabled: bool | None,
    config: Path | None,
    as_json: bool,
    **branding: str | None,
) -> None:
    """Change a client; a repeated option replaces that whole list, --clear empties it.

    Example: clients update my-app --clear resource --scope openid --scope orders:read
    """
    changes: dict[str, Any] = {
        "name": name,
        "redirect_uris": many(redirect_uris),
        "scopes": frozenset(scopes) if scopes else None,
        "grant_types": frozenset(grant_types) if grant_types else None,
        "resources": frozenset(resources) if resources else None,
        "require_pushed_authorization_requests": require_par,
        "dpop_bound_access_tokens": dpop_bound,
        "require_dpop_nonce": require_dpop_nonce,
        "may_introspect": introspection,
        "auth_policy": auth_policy,
        "exchange_subject_audiences": (
            frozenset(exchange_subject_audiences) if exchange_subject_audiences else None
        ),
        "exchange_delegation_chains": exchange_delegation_chains,
        "enabled": enabled,
        **branding,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    for name in cleared:
        field, empty = CLEARABLE[name]
        if field in changes:
            raise click.UsageError(f"--clear {name} and --{name} contradict each other")
        changes[field] = empty
    changes = _branding_changes(changes)
    client = with_runtime(
        settings_from(config), lambda runtime: _update(runtime, client_id, changes)
    )
    if as_json:
        print_json(client.to_metadata())
    else:
        print_line(f"updated client {client_id}")


def _branding_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Branding members of ``changes`` as one change of ``Client.branding``, applied to
    what the client has (``_update``)."""
    touched = {name: changes.pop(name) for name in BRANDING if name in changes}
    if touched:
        changes["branding"] = touched
    return changes


async def _update(runtime: Runtime, client_id: str, changes: dict[str, Any]) -> Client:
    stored = await _stored(runtime, client_id)
    if "branding" in changes:
        changes = {**changes, "branding": replace(stored.branding, **changes["branding"])}
    client = check_client(replace(stored, **changes))
    # The operator's word is the new ceiling for the registrant's own updates.
    client = replace(client, statement_values=operator_ceiling(client))
    await runtime.auth.clients.store.update(client, runtime.clock.now())
    if not client.enabled:
        # A disabled client's grants end now, not when they would have expired.
        await runtime.auth.access.revoke_families("client_disabled", OPERATOR, client_id=client_id)
    runtime.audit.emit(
        AuditEvent(
            "clients.update",
            Outcome.SUCCESS,
            actor=OPERATOR,
            target=client_id,
            details={"fields": sorted(changes)},
        )
    )
    return client


@clients.command()
@click.argument("client_id")
@config_option
@json_option
@handles_errors
def disable(client_id: str, config: Path | None, as_json: bool) -> None:
    """Disable a client and revoke its refresh tokens."""
    with_runtime(settings_from(config), lambda rt: _update(rt, client_id, {"enabled": False}))
    if as_json:
        print_json({"ok": True, "client_id": client_id, "enabled": False})
    else:
        print_line(f"disabled client {client_id}")


@clients.command()
@click.argument("client_id")
@config_option
@json_option
@handles_errors
def delete(client_id: str, config: Path | None, as_json: bool) -> None:
    """Delete a client and revoke everything issued to it."""

    async def action(runtime: Runtime) -> None:
        await _stored(runtime, client_id)
        await runtime.auth.access.revoke_families("client_deleted", OPERATOR, client_id=client_id)
        await runtime.auth.clients.store.delete(client_id)
        runtime.audit.emit(
            AuditEvent("clients.delete", Outcome.SUCCESS, actor=OPERATOR, target=client_id)
        )

    with_runtime(settings_from(config), action)
    if as_json:
        print_json({"ok": True, "client_id": client_id, "deleted": True})
    else:
        print_line(f"deleted client {client_id}")
