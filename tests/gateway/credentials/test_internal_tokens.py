"""Internal tokens under load: one mint per key however many requests are in flight,
renewed ahead of expiry so no request waits in the steady state, never outliving the
app's token (RFC 8693 §2.2 semantics for what is minted)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bastion.clock import FixedClock
from bastion.errors import Unauthenticated
from bastion.gateway.caller import Caller
from bastion.gateway.credentials import InternalTokens, Key
from bastion.gateway.settings import UpstreamSettings

START = 1_700_000_000.0
UPSTREAM = UpstreamSettings(name="notes", url="http://127.0.0.1:9")


class Minter:
    def __init__(self, clock: FixedClock, delay: float = 0.01) -> None:
        self.clock = clock
        self.delay = delay
        self.lifetimes: list[float] = []
        self.fail = False

    async def __call__(self, **request: Any) -> tuple[str, dict[str, Any]]:
        self.lifetimes.append(request["lifetime"])
        await asyncio.sleep(self.delay)
        if self.fail:
            raise ConnectionError("store down")
        exp = self.clock.now() + request["lifetime"]
        return f"token-{len(self.lifetimes)}", {"exp": exp}


def _caller(expires_at: float, subject: str = "alice") -> Caller:
    return Caller(
        issuer="bastion",
        subject=subject,
        client_id="app",
        scopes=frozenset({"notes:read"}),
        claims={"sub": subject},
        expires_at=expires_at,
        jti=None,
    )


async def _burst(tokens: InternalTokens, caller: Caller, n: int = 64) -> set[str]:
    found = await asyncio.gather(
        *(tokens.token_for(caller, UPSTREAM, ("notes:read",)) for _ in range(n))
    )
    return set(found)


async def test_concurrent_requests_share_one_mint() -> None:
    """The reported stampede: 64 concurrent requests minted 64 tokens."""
    clock = FixedClock(START)
    minter = Minter(clock)
    tokens = InternalTokens(minter, "gateway", clock)
    caller = _caller(START + 3600)
    assert await _burst(tokens, caller) == {"token-1"}
    assert len(minter.lifetimes) == 1
    # Once it is too close to expiry to be used, the next burst again mints once.
    clock.advance(55)
    assert await _burst(tokens, caller) == {"token-2"}
    assert len(minter.lifetimes) == 2


async def test_renewed_ahead_so_nobody_waits() -> None:
    clock = FixedClock(START)
    minter = Minter(clock)
    tokens = InternalTokens(minter, "gateway", clock)
    caller = _caller(START + 3600)
    await tokens.token_for(caller, UPSTREAM, ("notes:read",))
    clock.advance(45)  # 15 s left: still usable, due for renewal
    assert await _burst(tokens, caller) == {"token-1"}  # answered without waiting
    await asyncio.sleep(0.05)  # the one background renewal lands
    assert len(minter.lifetimes) == 2
    assert await _burst(tokens, caller) == {"token-2"}
    assert len(minter.lifetimes) == 2


async def test_a_failed_mint_fails_its_waiters_and_is_retried() -> None:
    clock = FixedClock(START)
    minter = Minter(clock)
    minter.fail = True
    tokens = InternalTokens(minter, "gateway", clock)
    caller = _caller(START + 3600)
    results = await asyncio.gather(
        *(tokens.token_for(caller, UPSTREAM, ()) for _ in range(8)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)
    assert len(minter.lifetimes) == 1
    minter.fail = False
    assert await tokens.token_for(caller, UPSTREAM, ()) == "token-2"


async def test_never_outlives_the_app_token() -> None:
    clock = FixedClock(START)
    minter = Minter(clock)
    tokens = InternalTokens(minter, "gateway", clock)
    await tokens.token_for(_caller(START + 3600), UPSTREAM, ())
    # Another app token of the same user with 30 s left gets its own, capped token.
    short = _caller(START + 30)
    assert await _burst(tokens, short) == {"token-2"}
    assert minter.lifetimes[-1] == pytest.approx(30)
    clock.advance(29.5)
    with pytest.raises(Unauthenticated):
        await tokens.token_for(short, UPSTREAM, ())


async def test_a_cancelled_request_does_not_cancel_the_shared_mint() -> None:
    clock = FixedClock(START)
    minter = Minter(clock, delay=0.05)
    tokens = InternalTokens(minter, "gateway", clock)
    caller = _caller(START + 3600)
    first = asyncio.ensure_future(tokens.token_for(caller, UPSTREAM, ()))
    second = asyncio.ensure_future(tokens.token_for(caller, UPSTREAM, ()))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == "token-1"
    assert len(minter.lifetimes) == 1


async def test_the_cached_path_gives_only_what_needs_no_mint_or_renewal() -> None:
    """``cached`` (the request path without a coroutine) answers only while the token has
    more than its renewal margin left; otherwise the request goes to ``token_for``."""
    clock = FixedClock(START)
    minter = Minter(clock)
    tokens = InternalTokens(minter, "gateway", clock)
    caller = _caller(START + 3600)
    assert tokens.cached(caller, UPSTREAM, ("notes:read",)) is None  # nothing minted yet
    await tokens.token_for(caller, UPSTREAM, ("notes:read",))
    assert tokens.cached(caller, UPSTREAM, ("notes:read",)) == "token-1"
    # Another verified token of the same user and sign-in shares it; other scopes do not.
    assert tokens.cached(_caller(START + 3600), UPSTREAM, ("notes:read",)) == "token-1"
    assert tokens.cached(caller, UPSTREAM, ()) is None
    assert tokens.cached(_caller(START + 3600, "bob"), UPSTREAM, ("notes:read",)) is None
    clock.advance(45)  # 15 s left: due for renewal, which only token_for starts
    assert tokens.cached(caller, UPSTREAM, ("notes:read",)) is None
    assert await tokens.token_for(caller, UPSTREAM, ("notes:read",)) == "token-1"
    await asyncio.sleep(0.05)
    assert tokens.cached(caller, UPSTREAM, ("notes:read",)) == "token-2"
    clock.advance(61)  # past its exp: never handed out
    assert tokens.cached(caller, UPSTREAM, ("notes:read",)) is None


async def test_the_cached_path_never_outlives_the_app_token() -> None:
    clock = FixedClock(START)
    minter = Minter(clock)
    tokens = InternalTokens(minter, "gateway", clock)
    long = _caller(START + 3600)
    await tokens.token_for(long, UPSTREAM, ())
    assert tokens.cached(long, UPSTREAM, ()) == "token-1"
    # The same user with an app token in its last minute: the shared token (60 s) would
    # outlive it, so it is not handed out; one capped at that expiry is minted instead.
    short = _caller(START + 30)
    assert tokens.cached(short, UPSTREAM, ()) is None
    assert await tokens.token_for(short, UPSTREAM, ()) == "token-2"
    assert minter.lifetimes[-1] == pytest.approx(30)
    # The capped token is kept under that expiry, for app tokens of that expiry only.
    assert tokens.cached(short, UPSTREAM, ()) == "token-2"
    assert tokens.cached(long, UPSTREAM, ()) == "token-1"
    clock.advance(15)  # 15 s left of both: inside the renewal margin
    assert tokens.cached(short, UPSTREAM, ()) is None


def test_keys_compare_by_their_parts() -> None:
    a = Key(("bastion", "alice", ("x",)))
    b = Key(("bastion", "alice", ("x",)))
    assert a == b
    assert hash(a) == hash(b)
    assert a != Key(("bastion", "bob", ("x",)))
    assert a != ("bastion", "alice", ("x",))
