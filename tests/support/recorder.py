"""An upstream that records what reaches it and answers what the test scripted."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send


@dataclass
class Seen:
    method: str
    raw_path: bytes
    query: bytes
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    raw: bytes | None = None


class Recorder:
    """Raw ASGI, so the test sees exactly the path bytes the gateway sent."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.answers: dict[str, Answer] = {}
        self.default = Answer()

    @property
    def last(self) -> Seen:
        return self.seen[-1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        raw_path = scope.get("raw_path") or scope["path"].encode()
        self.seen.append(
            Seen(
                scope["method"],
                raw_path,
                scope["query_string"],
                {k.decode(): v.decode() for k, v in scope["headers"]},
                body,
            )
        )
        answer = self.answers.get(scope["path"], self.default)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        payload = answer.raw if answer.raw is not None else orjson.dumps(answer.body)
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    *((k.encode(), v.encode()) for k, v in answer.headers),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
