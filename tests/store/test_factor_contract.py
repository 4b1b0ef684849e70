"""The FactorStore contract (TOTP, recovery codes, passkeys, recovery tickets), run
against every implementation. Every "use once" rule holds under concurrency too
(RFC 6238 §5.2; NIST SP 800-63B §5.1.2.2, §5.1.4.2)."""

from __future__ import annotations

import asyncio

from bastion.accounts.records import Passkey, RecoveryTicket
from bastion.accounts.stores import FactorStore

NOW = 1_700_000_000.0


def passkey(credential_id: str, user_id: str = "u1", created_at: float = NOW) -> Passkey:
    return Passkey(
        credential_id=credential_id,
        user_id=user_id,
        public_key=b"\x00key\xff",
        sign_count=3,
        name=f"key {credential_id}",
        transports=("internal", "hybrid"),
        backed_up=True,
        created_at=created_at,
        last_used_at=None,
    )


async def test_totp_enrolment_is_no_factor_until_confirmed(factor_store: FactorStore) -> None:
    assert await factor_store.totp("u1") is None
    await factor_store.start_totp("u1", b"sealed-1", NOW)
    pending = await factor_store.totp("u1")
    assert pending is not None
    assert (pending.sealed_secret, pending.created_at) == (b"sealed-1", NOW)
    assert not pending.confirmed
    assert not await factor_store.has_totp("u1")
    assert not await factor_store.use_totp_step("u1", 10, NOW, confirm=False), "not confirmed"
    assert await factor_store.use_totp_step("u1", 10, NOW + 1, confirm=True)
    confirmed = await factor_store.totp("u1")
    assert confirmed is not None
    assert (confirmed.confirmed_at, confirmed.last_used_step) == (NOW + 1, 10)
    assert await factor_store.has_totp("u1")
    assert not await factor_store.use_totp_step("u1", 11, NOW, confirm=True), "confirmed once"


async def test_a_new_enrolment_replaces_only_an_unconfirmed_one(factor_store: FactorStore) -> None:
    await factor_store.start_totp("u1", b"first", NOW)
    await factor_store.start_totp("u1", b"second", NOW + 1)
    pending = await factor_store.totp("u1")
    assert pending is not None
    assert pending.sealed_secret == b"second"
    assert "second" not in repr(pending)


async def test_a_totp_step_is_used_once_and_never_an_earlier_one(
    factor_store: FactorStore,
) -> None:
    await factor_store.start_totp("u1", b"s", NOW)
    assert await factor_store.use_totp_step("u1", 100, NOW, confirm=True)
    wins = await asyncio.gather(
        *(factor_store.use_totp_step("u1", 101, NOW, confirm=False) for _ in range(6))
    )
    assert wins.count(True) == 1
    assert not await factor_store.use_totp_step("u1", 101, NOW, confirm=False)
    assert not await factor_store.use_totp_step("u1", 99, NOW, confirm=False)
    assert await factor_store.use_totp_step("u1", 105, NOW, confirm=False)
    assert not await factor_store.use_totp_step("u2", 105, NOW, confirm=False), "no credential"


async def test_removing_totp_removes_its_recovery_codes(factor_store: FactorStore) -> None:
    await factor_store.start_totp("u1", b"s", NOW)
    await factor_store.replace_recovery_codes("u1", ["c1", "c2"], NOW)
    await factor_store.replace_recovery_codes("u2", ["d1"], NOW)
    assert await factor_store.remove_totp("u1")
    assert await factor_store.totp("u1") is None
    assert await factor_store.recovery_codes_left("u1") == 0
    assert await factor_store.recovery_codes_left("u2") == 1
    assert not await factor_store.remove_totp("u1")


async def test_recovery_codes_are_used_once_by_their_owner(factor_store: FactorStore) -> None:
    await factor_store.replace_recovery_codes("u1", ["c1", "c2", "c3"], NOW)
    assert await factor_store.recovery_codes_left("u1") == 3
    assert not await factor_store.use_recovery_code("u2", "c1", NOW), "another user's code"
    wins = await asyncio.gather(
        *(factor_store.use_recovery_code("u1", "c1", NOW) for _ in range(6))
    )
    assert wins.count(True) == 1
    assert await factor_store.recovery_codes_left("u1") == 2
    await factor_store.replace_recovery_codes("u1", ["n1", "n2"], NOW + 1)
    assert not await factor_store.use_recovery_code("u1", "c2", NOW + 1), "replaced"
    assert await factor_store.recovery_codes_left("u1") == 2


async def test_passkeys(factor_store: FactorStore) -> None:
    await factor_store.add_passkey(passkey("b", created_at=NOW + 1))
    await factor_store.add_passkey(passkey("a"))
    await factor_store.add_passkey(passkey("c", user_id="u2"))
    assert [p.credential_id for p in await factor_store.passkeys("u1")] == ["a", "b"]
    assert await factor_store.passkey("a") == passkey("a")
    assert await factor_store.passkey("zz") is None
    await factor_store.passkey_used("a", 9, NOW + 5)
    used = await factor_store.passkey("a")
    assert used is not None
    assert (used.sign_count, used.last_used_at) == (9, NOW + 5)
    assert "public_key" not in repr(used)
    assert not await factor_store.remove_passkey("u2", "a"), "only its owner removes it"
    assert await factor_store.remove_passkey("u1", "a")
    assert await factor_store.passkey("a") is None


async def test_recovery_tickets(factor_store: FactorStore) -> None:
    ticket = RecoveryTicket("u1", reset_mfa=True, created_by="operator:cli", expires_at=NOW + 60)
    await factor_store.add_ticket("t1", ticket, NOW)
    assert await factor_store.ticket("t1", NOW) == ticket
    assert await factor_store.ticket("t1", NOW + 60) is None, "expired"
    assert await factor_store.ticket("unknown", NOW) is None
    assert not await factor_store.use_ticket("t1", NOW + 60)
    wins = await asyncio.gather(*(factor_store.use_ticket("t1", NOW + 1) for _ in range(4)))
    assert wins.count(True) == 1
    assert await factor_store.ticket("t1", NOW + 1) is None, "used"


async def test_remove_all_leaves_other_users_alone(factor_store: FactorStore) -> None:
    for user in ("u1", "u2"):
        await factor_store.start_totp(user, b"s", NOW)
        await factor_store.use_totp_step(user, 1, NOW, confirm=True)
        await factor_store.replace_recovery_codes(user, [f"{user}-c"], NOW)
        await factor_store.add_passkey(passkey(f"{user}-key", user_id=user))
        await factor_store.add_ticket(f"{user}-t", RecoveryTicket(user, False, "op", NOW + 60), NOW)
    await factor_store.remove_all("u1")
    assert not await factor_store.has_totp("u1")
    assert await factor_store.recovery_codes_left("u1") == 0
    assert await factor_store.passkeys("u1") == []
    assert await factor_store.ticket("u1-t", NOW) is None
    assert await factor_store.has_totp("u2")
    assert await factor_store.recovery_codes_left("u2") == 1
    assert len(await factor_store.passkeys("u2")) == 1
    assert await factor_store.ticket("u2-t", NOW) is not None
