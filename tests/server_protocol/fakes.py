"""A transport that records what uvicorn's protocol and Bastion's layers write to it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass


class FakeTransport(asyncio.Transport):
    """Keeps every write call apart (``writes``) and all of them joined (``written``)."""

    def __init__(self) -> None:
        super().__init__({"peername": ("192.0.2.7", 50000), "sockname": ("127.0.0.1", 8000)})
        self.writes: list[bytes] = []
        self.closed = False

    @property
    def written(self) -> bytes:
        return b"".join(self.writes)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.writes.append(b"".join(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@dataclass
class CycleState:
    """What ``OneWrite`` reads of uvicorn's request cycle."""

    response_started: bool = False
    disconnected: bool = False
