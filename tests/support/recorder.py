"""An upstream that records what reaches it and answers what the test scripted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
    """Raw ASGI, so the test sees exactly the path bytes the gateway sent.

    An answer comes from ``handler`` (computed from the request), else the next of
    ``script[path]`` (consumed in order), else ``answers[path]``, else ``default``.
    """

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.answers: dict[str, Answer] = {}
        self.script: dict[str, list[Answer]] = {}
        self.handler: Callable[[Seen], Answer] | None = None
        self.default = Answer()

    def count(self, path: bytes) -> int:
        return sum(1 for seen in self.seen if seen.raw_path == path)

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
        seen = self.seen[-1]
        queued = self.script.get(scope["path"])
        if self.handler is not None:
            answer = self.handler(seen)
        elif queued:
            answer = queued.pop(0)
        else:
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


class ResetServer:
    """A TCP server that reads a request and closes the connection without answering:
    for the gateway, an upstream reset mid-request."""

    def __init__(self) -> None:
        self.requests = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.requests += 1
        writer.transport.abort()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
