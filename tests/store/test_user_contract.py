"""The UserStore contract, run against every implementation (tests/store/conftest.py)."""

from __future__ import annotations

import pytest

from bastion.accounts.stores import UserStore
from bastion.errors import UserExists

NOW = 1_700_000_000.0


async def test_users(user_store: UserStore) -> None:
    alice = await user_store.create("alice", "hash", NOW)
    with pytest.raises(UserExists):
        await user_store.create("alice", None, NOW)
    assert (await user_store.by_username("alice")) == alice
    assert await user_store.invalidate_tokens(alice.user_id, NOW + 5)
    again = await user_store.get(alice.user_id)
    assert again is not None
    assert again.tokens_valid_after == NOW + 5
    assert "hash" not in repr(again)


async def test_a_new_user_is_enabled_with_a_random_id(user_store: UserStore) -> None:
    alice = await user_store.create("alice", None, NOW)
    bob = await user_store.create("bob", "h", NOW)
    assert alice.user_id != bob.user_id
    assert len(alice.user_id) == 32
    assert (alice.enabled, alice.created_at, alice.tokens_valid_after) == (True, NOW, 0.0)
    assert (alice.password_hash, alice.auth_policy) == (None, "password")
    assert await user_store.get(alice.user_id) == alice
    assert await user_store.get("nobody") is None
    assert await user_store.by_username("nobody") is None


async def test_list_is_ordered_by_username(user_store: UserStore) -> None:
    for name in ("carol", "alice", "bob"):
        await user_store.create(name, None, NOW)
    assert [u.username for u in await user_store.list()] == ["alice", "bob", "carol"]


async def test_setters_change_one_user_and_say_whether_it_exists(user_store: UserStore) -> None:
    alice = await user_store.create("alice", "old", NOW)
    bob = await user_store.create("bob", "bob's", NOW)
    await user_store.set_password_hash(alice.user_id, "new")
    assert await user_store.set_policy(alice.user_id, "totp")
    assert await user_store.set_enabled(alice.user_id, False)
    changed = await user_store.get(alice.user_id)
    assert changed is not None
    assert (changed.password_hash, changed.auth_policy, changed.enabled) == ("new", "totp", False)
    assert await user_store.get(bob.user_id) == bob
    assert not await user_store.set_policy("nobody", "totp")
    assert not await user_store.set_enabled("nobody", True)
    assert not await user_store.invalidate_tokens("nobody", NOW)


async def test_token_state_follows_disabling_and_revocation(user_store: UserStore) -> None:
    """What token checks read (RFC 7662 §2.2: a revoked user's tokens are inactive)."""
    alice = await user_store.create("alice", None, NOW)
    assert await user_store.token_state(alice.user_id) == (True, 0.0)
    assert await user_store.invalidate_tokens(alice.user_id, NOW + 5)
    assert await user_store.token_state(alice.user_id) == (True, NOW + 5)
    assert await user_store.set_enabled(alice.user_id, False)
    assert await user_store.token_state(alice.user_id) == (False, NOW + 5)
    assert await user_store.token_state("nobody") is None


async def test_delete(user_store: UserStore) -> None:
    alice = await user_store.create("alice", None, NOW)
    assert await user_store.delete(alice.user_id)
    assert not await user_store.delete(alice.user_id)
    assert await user_store.get(alice.user_id) is None
    assert await user_store.by_username("alice") is None
    again = await user_store.create("alice", None, NOW)
    assert again.user_id != alice.user_id, "the name is free again, under a new id"
