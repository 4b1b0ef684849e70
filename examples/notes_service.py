"""A notes service written naively on purpose: the kind of API Bastion is put in front of.

Its flaws are deliberate, so the demo and the tests can show each attack succeeding here
and failing through Bastion (see examples/bastion.toml and tests/gateway/test_examples.py):

- no authentication: it believes the ``sub`` of any bearer JWT without checking the
  signature, and falls back to an ``owner`` field in the body;
- sequential ids and no ownership checks (IDOR / BOLA): any note can be read by id;
- mass assignment: profile updates accept ``admin``;
- internal fields in every answer (password hashes, shard names, scores);
- a debug endpoint that dumps its configuration;
- a ``Server`` header that names its stack.

Run it alone with ``python examples/notes_service.py --port 8001``. Never deploy it.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

NOTES: dict[int, dict[str, Any]] = {}
USERS: dict[str, dict[str, Any]] = {}
_ids = itertools.count(1)
SERVER = {"server": "notes-service/0.1 (Python; starlette)", "x-powered-by": "starlette"}


def _answer(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=SERVER)


def _caller(request: Request, body: dict[str, Any] | None = None) -> str | None:
    """Whoever the token says, signature unchecked; else whoever the body says."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.count(".") == 2:
        payload = token.split(".")[1]
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            return str(claims["sub"])
        except (ValueError, KeyError):
            pass
    owner = (body or {}).get("owner")
    return str(owner) if owner is not None else None


async def create_note(request: Request) -> JSONResponse:
    body = await request.json()
    note_id = next(_ids)
    NOTES[note_id] = {
        "id": note_id,
        "owner": _caller(request, body),
        "title": body.get("title"),
        "body": body.get("body", ""),
        "db_shard": "notes-eu-3",
        "moderation_score": 0.12,
    }
    return _answer(NOTES[note_id], 201)


async def read_note(request: Request) -> JSONResponse:
    note = NOTES.get(int(request.path_params["note_id"]))
    if note is None:
        return _answer({"error": "not found"}, 404)
    return _answer(note)


async def notes_of(request: Request) -> JSONResponse:
    owner = request.path_params["user_id"]
    return _answer([n for n in NOTES.values() if n["owner"] == owner])


async def note_owner(request: Request) -> JSONResponse:
    note = NOTES.get(int(request.path_params["note_id"]))
    if note is None:
        return _answer({"error": "not found"}, 404)
    return _answer({"owner": note["owner"]})


async def read_user(request: Request) -> JSONResponse:
    user_id = request.path_params["user_id"]
    user = USERS.setdefault(user_id, _new_user(user_id))
    return _answer(user)


async def update_user(request: Request) -> JSONResponse:
    user_id = request.path_params["user_id"]
    user = USERS.setdefault(user_id, _new_user(user_id))
    user.update(await request.json())  # every field, "admin" included
    return _answer(user)


def _new_user(user_id: str) -> dict[str, Any]:
    return {
        "id": user_id,
        "name": "",
        "email": "",
        "admin": False,
        "password_hash": "$argon2id$v=19$m=65536,t=3,p=1$example$example",
    }


async def debug(request: Request) -> JSONResponse:
    return _answer({"database_url": "postgresql://notes:hunter2@db/notes", "debug": True})


async def crash(request: Request) -> JSONResponse:
    return _answer({"error": "Traceback (most recent call last): ... at db.py line 42"}, 500)


app = Starlette(
    routes=[
        Route("/notes", create_note, methods=["POST"]),
        Route("/notes/{note_id:int}", read_note, methods=["GET"]),
        Route("/notes/{note_id:int}/owner", note_owner, methods=["GET"]),
        Route("/users/{user_id}", read_user, methods=["GET"]),
        Route("/users/{user_id}", update_user, methods=["PUT"]),
        Route("/users/{user_id}/notes", notes_of, methods=["GET"]),
        Route("/debug/config", debug, methods=["GET"]),
        Route("/reports/crash", crash, methods=["GET"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", server_header=False)


if __name__ == "__main__":
    main()
