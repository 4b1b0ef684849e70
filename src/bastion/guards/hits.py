"""Recent rate-limit refusals per user, for the risk engine's ``rate_limited`` signal.

The limiter adds one here each time it refuses a request that has a user; the count is
a fixed window of ``WINDOW`` seconds from the first refusal (a hot-state counter with a
TTL), which is all a risk signal needs. Counting never fails a request: with hot state
down the refusal is still answered and the count is simply not kept.
"""

from __future__ import annotations

import contextlib
import hashlib

from bastion.errors import StoreUnavailable
from bastion.store.protocols import HotStore

WINDOW = 900.0
_PREFIX = "rl-hits:"


def _key(user: str) -> str:
    return _PREFIX + hashlib.blake2b(user.encode(), digest_size=16).hexdigest()


async def record(hot: HotStore, user: str) -> None:
    # A refusal is answered whether or not it could be counted.
    with contextlib.suppress(StoreUnavailable):
        await hot.incr(_key(user), ttl=WINDOW)


async def recent(hot: HotStore, user: str) -> int:
    """Refusals of ``user`` in the current window (``StoreUnavailable`` propagates)."""
    value = await hot.get(_key(user))
    return 0 if value is None else int(value)
