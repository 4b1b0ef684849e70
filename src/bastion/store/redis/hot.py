"""Hot state in Redis, shared by every Bastion process.

Each primitive is one atomic step on the server: single commands where Redis has one
(``SET NX PX``), a ``MULTI`` transaction where two commands must apply together, and
optimistic ``WATCH`` transactions for compare-and-set, retried when another client
changed the key between the read and the write.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bastion.errors import StoreError, StoreUnavailable

T = TypeVar("T")


# The arithmetic of bastion.guards.gcra, in the same order of floating-point operations so
# that both backends reach the same decision. TATs are stored with 17 significant digits.
GCRA_SCRIPT = """
local now = tonumber(ARGV[1])
local previous = {}
local moved = {}
local ok = 1
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local span = tonumber(ARGV[2 * i + 1])
  local raw = redis.call('GET', KEYS[i])
  local tat = now
  if raw then
    previous[i] = raw
    tat = math.max(tonumber(raw), now)
  else
    previous[i] = ''
  end
  local new_tat = tat + interval
  if new_tat - span > now + 0.000001 then ok = 0 end
  moved[i] = new_tat
end
if ok == 1 then
  for i = 1, #KEYS do
    local ttl = math.ceil((moved[i] - now) * 1000) + 1
    redis.call('SET', KEYS[i], string.format('%.17g', moved[i]), 'PX', ttl)
  end
end
previous[#KEYS + 1] = tostring(ok)
return previous
"""


def _ms(ttl: float | None) -> int | None:
    if ttl is None:
        return None
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    return max(1, math.ceil(ttl * 1000))


class RedisHotStore:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "bastion:",
        connect_timeout: float = 2.0,
        command_timeout: float = 2.0,
    ) -> None:
        self._prefix = prefix
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=command_timeout,
            health_check_interval=30,
        )
        # One round trip per rate-limit decision, atomic on the server.
        self._gcra = self._redis.register_script(GCRA_SCRIPT)

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one operation, translating the client's errors at this boundary."""
        try:
            return await operation()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreUnavailable("hot_state", type(exc).__name__) from exc
        except RedisError as exc:
            raise StoreError(f"hot state command failed: {type(exc).__name__}") from exc

    async def get(self, key: str) -> bytes | None:
        async def op() -> bytes | None:
            value = await self._redis.get(self._k(key))
            if value is None or isinstance(value, bytes):
                return value
            return str(value).encode()

        return await self._call(op)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        px = _ms(ttl)

        async def op() -> None:
            await self._redis.set(self._k(key), value, px=px)

        await self._call(op)

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        px = _ms(ttl)

        async def op() -> bool:
            return bool(await self._redis.set(self._k(key), value, px=px, nx=True))

        return await self._call(op)

    async def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None = None
    ) -> bool:
        if expected is None:
            return await self.set_if_absent(key, value, ttl)
        px = _ms(ttl)
        return await self._call(
            lambda: self._watched(key, expected, lambda p: p.set(self._k(key), value, px=px))
        )

    async def compare_and_delete(self, key: str, expected: bytes) -> bool:
        return await self._call(
            lambda: self._watched(key, expected, lambda p: p.delete(self._k(key)))
        )

    async def _watched(
        self, key: str, expected: bytes, write: Callable[[aioredis.client.Pipeline], object]
    ) -> bool:
        full = self._k(key)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(full)
                    current = await pipe.get(full)
                    if current != expected:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        return False
                    pipe.multi()  # type: ignore[no-untyped-call]
                    write(pipe)
                    await pipe.execute()
                    return True
                except WatchError:
                    # Someone wrote between our read and our write: read again.
                    continue

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        px = _ms(ttl)
        full = self._k(key)

        async def op() -> int:
            if px is None:
                return int(await self._redis.incrby(full, amount))
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(full, 0, px=px, nx=True)
                pipe.incrby(full, amount)
                results = await pipe.execute()
            return int(results[1])

        return await self._call(op)

    async def delete(self, key: str) -> bool:
        async def op() -> bool:
            return bool(await self._redis.delete(self._k(key)))

        return await self._call(op)

    async def ttl(self, key: str) -> float | None:
        async def op() -> float | None:
            ms = int(await self._redis.pttl(self._k(key)))
            return None if ms < 0 else ms / 1000

        return await self._call(op)

    async def rate_check(
        self, keys: Sequence[str], rates: Sequence[tuple[float, float]], now: float
    ) -> tuple[bool, list[float | None]]:
        args: list[str] = [repr(now)]
        for interval, span in rates:
            args += [repr(interval), repr(span)]

        async def op() -> list[bytes]:
            result = await self._gcra(keys=[self._k(k) for k in keys], args=args)
            return list(result)

        reply = await self._call(op)
        previous = [None if not raw else float(raw) for raw in reply[:-1]]
        return reply[-1] in (b"1", 1, "1"), previous

    async def ping(self) -> None:
        async def op() -> None:
            await self._redis.ping()

        await self._call(op)

    async def close(self) -> None:
        await self._redis.aclose()
