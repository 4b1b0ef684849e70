"""The demo's people and data: the user ``demo``, who signs in, and the user ``other``,
whose note ``demo`` tries to read, so that the attempt is a real one against a note
that exists and belongs to someone else.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import aiohttp
import orjson
from sqlalchemy import delete

from bastion import wiring
from bastion.accounts.passwords import Passwords
from bastion.accounts.stores import UserStore
from bastion.audit import AuditEvent, Outcome
from bastion.authserver.access import Authentication
from bastion.config import Settings
from bastion.runtime import Runtime
from bastion.store.sql.rows import Rows
from bastion.store.sql.schema import object_owners
from bastion.store.sql.users import SqlUserStore

DEMO_USER, OTHER_USER = "demo", "other"
NOTE_KIND = "note"
CLIENT_ID = "demo-app"
SEED_LIFETIME = 60.0


def password_file(directory: Path, username: str) -> Path:
    return directory / f"{username}-user-password.txt"


def _secret_file(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")


async def prepare(settings: Settings, directory: Path) -> dict[str, str]:
    """Both users (ids by name), each created once with a random password kept in a file
    only its owner can read; and an ownership registry without notes.

    The notes service keeps its notes in memory and numbers them from 1 on every start,
    while the registry lives in the database: the owners a previous run recorded would
    name notes that no longer exist, and could claim the new notes with their numbers.
    """
    database = wiring.open_database(settings)
    try:
        users: UserStore = SqlUserStore(database)
        ids = {}
        for username in (DEMO_USER, OTHER_USER):
            user = await users.by_username(username)
            if user is None:
                password = secrets.token_urlsafe(12)
                hashed = Passwords(settings.accounts.passwords).hash(password)
                user = await users.create(username, hashed, 0.0)
                _secret_file(password_file(directory, username), password)
            ids[username] = user.user_id
        await Rows(database).run(delete(object_owners).where(object_owners.c.kind == NOTE_KIND))
        return ids
    finally:
        await database.close()


async def seed_note(runtime: Runtime, gateway: str, owner: str) -> int:
    """A note of ``owner``, created through the gateway as their own app would, so that
    the registry records them as its owner; returns its id.

    The token is minted here rather than at the token endpoint (nobody signs in as the
    other user), lives a minute, and is revoked once used.
    """
    access = runtime.auth.access
    token, claims = await access.mint(
        client_id=CLIENT_ID,
        who=Authentication(owner),
        scope=("notes:read", "notes:write"),
        audience=(wiring.gateway_audience(runtime.settings),),
        lifetime=SEED_LIFETIME,
    )
    runtime.audit.emit(
        AuditEvent(
            "oauth.token.issued",
            Outcome.SUCCESS,
            actor="demo",
            target=claims["jti"],
            details={"grant": "demo_seed", "subject": owner},
        )
    )
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{gateway}/notes",
                json={"title": "Not yours", "body": f"A note of the user {OTHER_USER}"},
                headers={"authorization": f"Bearer {token}"},
            ) as answer,
        ):
            body = await answer.read()
            if answer.status != 201:
                raise RuntimeError(f"the gateway answered {answer.status} to the demo's note")
        note_id = orjson.loads(body)["id"]
        return int(note_id)
    finally:
        await access.deny([(claims["jti"], float(claims["exp"]))], "demo_seeded")
