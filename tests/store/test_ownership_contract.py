"""The OwnershipStore contract (the gateway's object registry, OWASP API1), run against
every implementation."""

from __future__ import annotations

import asyncio

import pytest

from bastion.gateway.identifiers import MAX_ID_LENGTH
from bastion.gateway.objects import OwnershipStore

NOW = 1_700_000_000.0


async def test_the_first_owner_wins(ownership_store: OwnershipStore) -> None:
    assert await ownership_store.owner("note", "n1") is None
    assert await ownership_store.record("note", "n1", "alice", NOW) == ("alice", True)
    assert await ownership_store.record("note", "n1", "bob", NOW + 1) == ("alice", False)
    assert await ownership_store.record("note", "n1", "alice", NOW + 2) == ("alice", False)
    assert await ownership_store.owner("note", "n1") == "alice"


async def test_of_racing_creates_one_is_recorded(ownership_store: OwnershipStore) -> None:
    results = await asyncio.gather(
        *(ownership_store.record("note", "n1", f"user{i}", NOW) for i in range(6))
    )
    assert [recorded for _, recorded in results].count(True) == 1
    winner = next(owner for owner, recorded in results if recorded)
    assert {owner for owner, _ in results} == {winner}
    assert await ownership_store.owner("note", "n1") == winner


async def test_kinds_are_apart_and_forget_frees_an_id(ownership_store: OwnershipStore) -> None:
    await ownership_store.record("note", "1", "alice", NOW)
    await ownership_store.record("album", "1", "bob", NOW)
    assert await ownership_store.owner("album", "1") == "bob"
    await ownership_store.forget("note", "1")
    await ownership_store.forget("note", "never-recorded")
    assert await ownership_store.owner("note", "1") is None
    assert await ownership_store.owner("album", "1") == "bob"
    assert await ownership_store.record("note", "1", "carol", NOW) == ("carol", True)


async def test_every_id_the_gateway_forwards_fits_and_no_longer_one_is_recorded(
    ownership_store: OwnershipStore,
) -> None:
    longest, too_long = "x" * MAX_ID_LENGTH, "x" * (MAX_ID_LENGTH + 1)
    assert await ownership_store.record("note", longest, "alice", NOW) == ("alice", True)
    assert await ownership_store.owner("note", longest) == "alice"
    assert await ownership_store.owner("note", too_long) is None
    with pytest.raises(ValueError, match="too long"):
        await ownership_store.record("note", too_long, "alice", NOW)
