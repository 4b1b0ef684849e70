"""The measuring loop every benchmark shares: operations per second over a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def rate(op: Callable[[int], Awaitable[Any]], concurrency: int, seconds: float) -> float:
    """Operations per second, with ``concurrency`` calls in flight; ``op`` gets a counter."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < deadline:
            await op(i)
            i += concurrency
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return done / (time.perf_counter() - start)
