"""The demo page's buttons against a stand-in for Bastion: what each leaves on the
session, and a lesson that never claims what the answer did not show."""

from __future__ import annotations

from typing import Any

from bastion.demo.actions import BY_NAME, STALE, Scenario
from bastion.demo.client import AppClient, Exchange, Tokens
from bastion.demo.sessions import Session

SCENARIO = Scenario("other", 1, "http://localhost:8001")


def _exchange(status: int, body: str = "{}") -> Exchange:
    return Exchange("GET", "http://localhost:8000/api/x", "", status, "", (), body)


class StandIn(AppClient):
    """Answers every call with ``status``; the first refresh gets ``renewed``, and every
    later one is refused, as after reuse detection."""

    def __init__(self, status: int, renewed: Tokens | None = None) -> None:
        self.status = status
        self.renewed = renewed
        self.calls: list[str] = []

    async def call(self, method: str, path: str, access_token: str, json: Any = None) -> Exchange:
        self.calls.append(f"{method} {path}")
        return _exchange(self.status, '{"id": 7, "title": "t", "body": ""}')

    async def refresh(self, refresh_token: str) -> tuple[Exchange, Tokens | None]:
        self.calls.append(f"refresh {refresh_token}")
        renewed, self.renewed = self.renewed, None
        return _exchange(200 if renewed else 400), renewed


def _signed_in() -> Session:
    return Session(tokens=Tokens("a.e30.s", "r0", None))


async def test_a_created_note_is_remembered_for_reading() -> None:
    session, client = _signed_in(), StandIn(201)
    answer = await BY_NAME["create-note"].perform(session, client, SCENARIO)
    assert session.note_id == 7
    assert answer.links[0][1] == "http://localhost:8001/notes/7"
    await BY_NAME["read-note"].perform(session, client, SCENARIO)
    assert client.calls[-1] == "GET /notes/7"


async def test_an_expired_token_is_named_rather_than_the_defence() -> None:
    answer = await BY_NAME["read-other-note"].perform(_signed_in(), StandIn(401), SCENARIO)
    assert answer.refused
    assert answer.lesson == STALE
    assert answer.links == ()


async def test_rotation_keeps_the_spent_token_to_reuse_and_reuse_ends_the_session() -> None:
    session = _signed_in()
    client = StandIn(401, renewed=Tokens("b.e30.s", "r1", None))
    reuse = BY_NAME["reuse-refresh"]
    assert (await reuse.perform(session, client, SCENARIO)).exchanges == ()
    await BY_NAME["refresh"].perform(session, client, SCENARIO)
    assert (session.spent_refresh, session.rotations) == ("r0", 1)
    answer = await reuse.perform(session, client, SCENARIO)
    assert client.calls[-3:] == ["refresh r0", "refresh r1", "GET /users//notes"]
    assert [e.status for e in answer.exchanges] == [400, 400, 401]
    assert answer.lesson != STALE, "a 401 is the point here"
    assert session.tokens is None
