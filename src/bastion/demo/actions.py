"""The demo page's buttons: each makes the calls an app would and says which defence the
answers show. Each runs for a signed-in session and leaves its ``Answer`` on it.

The gateway routes are those of ``examples/bastion.toml``; the notes service behind them
(``examples/notes_service.py``) is naive on purpose, so each lesson links to what it
answers when asked directly.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import orjson

from bastion.demo.client import AppClient, Exchange, Tokens
from bastion.demo.sessions import Answer, Session
from bastion.demo.tokens import decoded, fingerprint


@dataclass(frozen=True)
class Scenario:
    """What the demo prepared: another user's note, and the upstream's own address."""

    other_user: str
    other_note_id: int
    upstream: str


Run = Callable[[Session, Tokens, AppClient, Scenario], Awaitable[Answer]]


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    run: Run
    # Whether its lesson assumes a live access token (the token buttons end it on purpose).
    needs_access: bool = True

    async def perform(self, session: Session, client: AppClient, scenario: Scenario) -> Answer:
        """Run for a signed-in session; a 401 where the lesson assumed a live token says
        why instead (the token expires after a few minutes)."""
        if session.tokens is None:
            return Answer(self.label, "Sign in first.", ())
        answer = await self.run(session, session.tokens, client, scenario)
        if self.needs_access and answer.exchanges and answer.exchanges[-1].status == 401:
            return replace(answer, lesson=STALE, links=())
        return answer


STALE = (
    "Refused with 401: the access token has expired or was revoked, and the gateway "
    "checks both on every call. Refresh the tokens, or sign in again."
)


async def create_note(
    session: Session, tokens: Tokens, client: AppClient, scenario: Scenario
) -> Answer:
    note = {"title": "Hello from the demo app", "body": f"Written at {time.strftime('%H:%M:%S')}"}
    exchange = await client.call("POST", "/notes", tokens.access_token, note)
    links: tuple[tuple[str, str], ...] = ()
    created = orjson.loads(exchange.body) if exchange.status == 201 else None
    if isinstance(created, dict) and isinstance(created.get("id"), int):
        session.note_id = created["id"]
        direct = f"{scenario.upstream}/notes/{session.note_id}"
        links = (("The same note, asked of the upstream directly", direct),)
    return Answer(
        "Create a note",
        'The body matched the route\'s schema (an "owner" or "admin" field would be '
        "refused), Bastion recorded you as the note's owner, and cut the upstream's "
        "internal fields (owner, db_shard, moderation_score) from the answer.",
        (exchange,),
        links,
    )


async def read_note(
    session: Session, tokens: Tokens, client: AppClient, scenario: Scenario
) -> Answer:
    if session.note_id is None:
        return Answer("Read my note", "Create a note first.", ())
    exchange = await client.call("GET", f"/notes/{session.note_id}", tokens.access_token)
    return Answer(
        "Read my note",
        "Allowed: Bastion's ownership registry names you as this note's owner.",
        (exchange,),
    )


async def read_other_note(
    session: Session, tokens: Tokens, client: AppClient, scenario: Scenario
) -> Answer:
    note = scenario.other_note_id
    exchange = await client.call("GET", f"/notes/{note}", tokens.access_token)
    return Answer(
        "Read another user's note",
        f'Note {note} belongs to the user "{scenario.other_user}". The upstream hands '
        "any note to anyone who asks; Bastion's ownership registry refuses, and answers "
        "as if the note did not exist (OWASP API1, broken object level authorization).",
        (exchange,),
        (("The upstream's answer to anyone", f"{scenario.upstream}/notes/{note}"),),
    )


async def undeclared_path(
    session: Session, tokens: Tokens, client: AppClient, scenario: Scenario
) -> Answer:
    exchange = await client.call("GET", "/debug/config", tokens.access_token)
    return Answer(
        "Call an undeclared path",
        "No route declares /debug/config, so through Bastion it does not exist: deny by "
        "default, even with a valid token. The upstream serves its configuration, "
        "database password included, to anyone.",
        (exchange,),
        (("The upstream's debug endpoint", f"{scenario.upstream}/debug/config"),),
    )


async def refresh(
    session: Session, tokens: Tokens, client: AppClient, scenario: Scenario
) -> Answer:
    if tokens.refresh_token is None:
        return Answer("Refresh the tokens", "Bastion issued no refresh token.", ())
    exchange, renewed = await client.refresh(tokens.refresh_token)
    lesson = "Refused: sign in again."
    if renewed is not None:
        session.spent_refresh, session.tokens = tokens.refresh_token, renewed
        session.rotations += 1
        new = fingerprint(renewed.refresh_token) if renewed.refresh_token else "none"
        lesson = (
            f"Rotated: refresh token {new} replaces {fingerprint(tokens.refresh_token)}, "
            "which is now spent, with a new access token. Using the spent one again "
            "is what a thief who copied it would do: try it."
        )
    return Answer("Refresh the tokens", lesson, (exchange,))


async def reuse_spent_refresh(
    session: Session, tokens: Tokens, client: AppClient, scenario: Scenario
) -> Answer:
    spent = session.spent_refresh
    if spent is None:
        return Answer("Reuse the spent refresh token", "Refresh the tokens first.", ())
    reused, _ = await client.refresh(spent)
    exchanges = [reused]
    if tokens.refresh_token is not None:
        current, _ = await client.refresh(tokens.refresh_token)
        exchanges.append(current)
    exchanges.append(await _own_notes(tokens, client))
    session.tokens = session.spent_refresh = None
    return Answer(
        "Reuse the spent refresh token",
        "A spent refresh token came back, so it may have been stolen: Bastion revoked "
        "its whole family (RFC 9700 §4.14.2). The current refresh token and the access "
        "token stopped working too, for the thief and for the app: sign in again.",
        tuple(exchanges),
    )


async def revoke(session: Session, tokens: Tokens, client: AppClient, scenario: Scenario) -> Answer:
    token = tokens.refresh_token or tokens.access_token
    exchanges = (await client.revoke(token), await _own_notes(tokens, client))
    session.tokens = session.spent_refresh = None
    return Answer(
        "Revoke (sign out)",
        "Revocation (RFC 7009) answers 200 whatever the token, so it tells a caller "
        "nothing. Revoking the refresh token ended its family, access token included: the "
        "gateway refuses it at once, although it has not expired.",
        exchanges,
    )


async def _own_notes(tokens: Tokens, client: AppClient) -> Exchange:
    claims = decoded(tokens.access_token) or {}
    return await client.call("GET", f"/users/{claims.get('sub', '')}/notes", tokens.access_token)


ACTIONS = (
    Action("create-note", "Create a note", create_note),
    Action("read-note", "Read my note", read_note),
    Action("read-other-note", "Read another user's note", read_other_note),
    Action("undeclared-path", "Call an undeclared path", undeclared_path),
    Action("refresh", "Refresh the tokens", refresh, needs_access=False),
    Action(
        "reuse-refresh", "Reuse the spent refresh token", reuse_spent_refresh, needs_access=False
    ),
    Action("revoke", "Revoke (sign out)", revoke, needs_access=False),
)
BY_NAME = {action.name: action for action in ACTIONS}
