"""The GrantStore contract (codes, refresh families, the access token index), run against
every implementation. Races across processes: tests/store/test_oauth_stores.py."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import replace

import pytest

from bastion.authserver.stores import GrantStore, Issuance, IssuedToken
from bastion.oauth import pkce
from bastion.oauth.codes import CodeGrant, code_hash
from bastion.oauth.refresh import Family
from bastion.oauth.tokens import MAX_CLOCK_SKEW

NOW = 1_700_000_000.0


def grant(code: str = "c") -> CodeGrant:
    return CodeGrant(
        code_hash=code_hash(code),
        client_id="app",
        redirect_uri="x:/cb",
        code_challenge=pkce.s256("v" * 43),
        scope=("openid",),
        resources=("https://api",),
        subject="u1",
        session_id="s1",
        auth_time=NOW,
        acr="pwd",
        amr=("pwd", "otp"),
        nonce="n",
        issued_at=NOW,
        expires_at=NOW + 60,
        redirect_uri_given=False,
    )


def family(**changes: object) -> Family:
    created = Family(
        family_id="fam_" + os.urandom(8).hex(),
        salt=os.urandom(16),
        client_id="app",
        subject="u1",
        scope=("openid",),
        resources=("https://api",),
        generation=0,
        rotated_at=NOW,
        created_at=NOW,
        last_used_at=NOW,
        expires_at=NOW + 86400,
        session_id="s1",
        auth_time=NOW,
        acr="pwd",
        amr=("pwd",),
    )
    return replace(created, **changes)  # type: ignore[arg-type]


async def test_a_code_is_consumed_once(grant_store: GrantStore) -> None:
    """RFC 6749 §4.1.2: single use; of parallel redemptions exactly one succeeds."""
    await grant_store.save_code(grant())
    results = await asyncio.gather(
        *(grant_store.consume_code(code_hash("c"), NOW + 1) for _ in range(6))
    )
    assert [won for _, won in results].count(True) == 1
    assert all(found == replace(grant(), consumed_at=NOW + 1) for found, _ in results)
    assert await grant_store.consume_code(code_hash("nope"), NOW) == (None, False)


async def test_code_replay_and_family_links(grant_store: GrantStore) -> None:
    await grant_store.save_code(grant())
    assert not await grant_store.was_replayed(code_hash("c"))
    await grant_store.mark_replayed(code_hash("c"), NOW)
    assert await grant_store.was_replayed(code_hash("c"))
    assert not await grant_store.was_replayed(code_hash("unknown"))
    assert await grant_store.family_of_code(code_hash("c")) is None
    linked = family()
    assert not await grant_store.issue_from_code(code_hash("c"), linked, issued("j-c")), (
        "RFC 6749 §4.1.2: a replayed code issues nothing"
    )
    await grant_store.save_code(grant("d"))
    assert await grant_store.issue_from_code(code_hash("d"), linked, issued("j-d"))
    assert await grant_store.family_of_code(code_hash("d")) == linked.family_id
    assert await grant_store.family_of_code(code_hash("unknown")) is None


async def test_a_family_round_trips_and_advances_once_per_generation(
    grant_store: GrantStore,
) -> None:
    created = family()
    await grant_store.create_family(created)
    assert await grant_store.get_family(created.family_id) == created
    assert await grant_store.get_family("fam_unknown") is None
    fid = created.family_id
    wins = await asyncio.gather(
        *(
            grant_store.rotate_family(fid, 0, NOW + 1, f"fp{i}", issued(f"a{i}", family_id=fid))
            for i in range(6)
        )
    )
    assert wins.count(True) == 1
    assert await grant_store.get_family(created.family_id) == replace(
        created,
        generation=1,
        rotated_at=NOW + 1,
        last_used_at=NOW + 1,
        rotated_by=f"fp{wins.index(True)}",
    )
    assert not await grant_store.rotate_family(fid, 0, NOW + 2, "", issued("b")), "stale"
    assert await grant_store.rotate_family(fid, 1, NOW + 2, "", issued("c", family_id=fid))
    advanced = await grant_store.get_family(created.family_id)
    assert advanced is not None
    assert (advanced.generation, advanced.rotated_by) == (2, ""), "no instance: unknown"


async def test_active_families_are_live_and_most_recently_used_first(
    grant_store: GrantStore,
) -> None:
    older, newer = family(last_used_at=NOW + 1), family(last_used_at=NOW + 2)
    ended, revoked, others = family(expires_at=NOW + 5), family(), family(subject="u2")
    for created in (older, newer, ended, revoked, others):
        await grant_store.create_family(created)
    await grant_store.revoke_families(NOW, "test", family_id=revoked.family_id)
    active = await grant_store.active_families("u1", NOW + 5)
    assert [f.family_id for f in active] == [newer.family_id, older.family_id]


async def test_revocation_and_the_token_index(grant_store: GrantStore) -> None:
    first, second = family(), family(subject="u2")
    await grant_store.create_family(first)
    await grant_store.create_family(second)
    await grant_store.record_token(
        "j1", client_id="app", subject="u1", expires_at=NOW + 300, family_id=first.family_id
    )
    await grant_store.record_token(
        "j2",
        client_id="app",
        subject="u1",
        expires_at=NOW - MAX_CLOCK_SKEW - 1,
        family_id=first.family_id,
    )
    await grant_store.record_token(
        "j3", client_id="app", subject="u2", expires_at=NOW + 300, code_hash="ch"
    )
    assert await grant_store.revoke_families(NOW, "reuse", family_id=first.family_id) == [
        first.family_id
    ]
    assert await grant_store.revoke_families(NOW, "again", family_id=first.family_id) == []
    assert not await grant_store.rotate_family(
        first.family_id, 0, NOW, "", issued("jx", family_id=first.family_id)
    ), "revoked stay put"
    revoked = await grant_store.get_family(first.family_id)
    assert revoked is not None
    assert revoked.revoked_at == NOW
    assert await grant_store.live_tokens(NOW, family_ids=[first.family_id]) == [("j1", NOW + 300)]
    assert await grant_store.live_tokens(NOW, code_hash="ch") == [("j3", NOW + 300)]
    assert await grant_store.revoke_families(NOW, "user", subject="u2") == [second.family_id]
    with pytest.raises(ValueError, match="selector"):
        await grant_store.revoke_families(NOW, "everything")


async def test_revocation_selectors_combine(grant_store: GrantStore) -> None:
    mine = family(session_id="s1", client_id="app")
    other_session = family(session_id="s2", client_id="app")
    other_client = family(session_id="s1", client_id="web")
    for created in (mine, other_session, other_client):
        await grant_store.create_family(created)
    assert await grant_store.revoke_families(NOW, "logout", session_id="s1", client_id="app") == [
        mine.family_id
    ]
    assert sorted(await grant_store.revoke_families(NOW, "user", subject="u1")) == sorted(
        [other_session.family_id, other_client.family_id]
    )


async def test_families_bound_to_a_dpop_key_are_revoked_together(
    grant_store: GrantStore,
) -> None:
    """A revoked device's DPoP key (RFC 9449 §5 binds a public client's family to it)
    selects every family of the installation, across users, and no other."""
    first, second = family(dpop_jkt="jkt-device"), family(subject="u2", dpop_jkt="jkt-device")
    other, unbound = family(dpop_jkt="jkt-other"), family()
    for created in (first, second, other, unbound):
        await grant_store.create_family(created)
    revoked = await grant_store.revoke_families(NOW, "device_revoked", dpop_jkt="jkt-device")
    assert sorted(revoked) == sorted([first.family_id, second.family_id])
    assert await grant_store.revoke_families(NOW, "again", dpop_jkt="jkt-device") == []
    assert await grant_store.active_families("u1", NOW) != []
    assert await grant_store.revoke_families(NOW, "x", dpop_jkt="jkt-device", subject="u1") == []


async def test_tokens_within_the_clock_skew_are_live(grant_store: GrantStore) -> None:
    """A token past ``exp`` still verifies within the forgiven skew, so revoking must
    still reach it; one past that is gone."""
    await grant_store.record_token("live", client_id="app", subject="u1", expires_at=NOW - 1)
    await grant_store.record_token(
        "dead", client_id="app", subject="u1", expires_at=NOW - MAX_CLOCK_SKEW - 1
    )
    await grant_store.record_token("theirs", client_id="app", subject="u2", expires_at=NOW + 9)
    assert await grant_store.live_tokens(NOW, subject="u1") == [("live", NOW - 1)]


async def test_lineage(grant_store: GrantStore) -> None:
    await grant_store.record_token(
        "j1", client_id="app", subject="u1", expires_at=NOW, family_id="f", code_hash="ch"
    )
    await grant_store.record_token("j2", client_id="svc", subject="svc", expires_at=NOW)
    assert await grant_store.lineage("j1") == ("f", "ch")
    assert await grant_store.lineage("j2") == (None, None)
    assert await grant_store.lineage("unknown") == (None, None)


def issued(jti: str, **changes: object) -> IssuedToken:
    return replace(IssuedToken(jti, "app", "u1", NOW + 300), **changes)  # type: ignore[arg-type]


async def test_issuing_from_a_code_writes_the_family_the_link_and_the_token_together(
    grant_store: GrantStore,
) -> None:
    await grant_store.save_code(grant())
    created = family()
    token = issued("jti-code", family_id=created.family_id, code_hash=code_hash("c"))
    assert await grant_store.issue_from_code(code_hash("c"), created, token)
    assert await grant_store.get_family(created.family_id) == created
    assert await grant_store.family_of_code(code_hash("c")) == created.family_id
    assert await grant_store.lineage("jti-code") == (created.family_id, code_hash("c"))


async def test_issuing_from_a_code_without_a_family_indexes_the_token(
    grant_store: GrantStore,
) -> None:
    await grant_store.save_code(grant())
    assert await grant_store.issue_from_code(
        code_hash("c"), None, issued("jti-bare", code_hash=code_hash("c"))
    )
    assert await grant_store.family_of_code(code_hash("c")) is None
    assert await grant_store.lineage("jti-bare") == (None, code_hash("c"))


async def test_nothing_is_issued_from_a_code_marked_replayed(grant_store: GrantStore) -> None:
    """RFC 6749 §4.1.2: a second redemption's mark stops a first one still in flight."""
    await grant_store.save_code(grant())
    await grant_store.mark_replayed(code_hash("c"), NOW)
    created = family()
    token = issued("jti-late", family_id=created.family_id, code_hash=code_hash("c"))
    assert not await grant_store.issue_from_code(code_hash("c"), created, token)
    assert await grant_store.get_family(created.family_id) is None
    assert await grant_store.family_of_code(code_hash("c")) is None
    assert await grant_store.lineage("jti-late") == (None, None)
    assert not await grant_store.issue_from_code(code_hash("unknown"), None, issued("jti-x"))
    assert await grant_store.lineage("jti-x") == (None, None)


async def test_rotating_advances_once_and_indexes_only_the_winners_token(
    grant_store: GrantStore,
) -> None:
    created = family()
    await grant_store.create_family(created)
    fid = created.family_id
    results = await asyncio.gather(
        *(
            grant_store.rotate_family(fid, 0, NOW + 1, f"fp{i}", issued(f"r{i}", family_id=fid))
            for i in range(5)
        )
    )
    assert results.count(True) == 1
    winner = results.index(True)
    stored = await grant_store.get_family(fid)
    assert stored is not None
    assert (stored.generation, stored.rotated_by, stored.last_used_at) == (
        1,
        f"fp{winner}",
        NOW + 1,
    )
    live = await grant_store.live_tokens(NOW, family_ids=[fid])
    assert [jti for jti, _ in live] == [f"r{winner}"]


async def test_a_revoked_family_neither_rotates_nor_reissues(grant_store: GrantStore) -> None:
    created = family(generation=3)
    await grant_store.create_family(created)
    fid = created.family_id
    await grant_store.revoke_families(NOW, "test", family_id=fid)
    assert not await grant_store.rotate_family(fid, 3, NOW, "fp", issued("a", family_id=fid))
    assert not await grant_store.reissue_in_family(fid, 3, issued("b", family_id=fid))
    assert await grant_store.live_tokens(NOW, family_ids=[fid]) == []
    stored = await grant_store.get_family(fid)
    assert stored is not None
    assert stored.generation == 3


async def test_reissuing_needs_the_family_live_at_that_generation(
    grant_store: GrantStore,
) -> None:
    created = family(generation=2)
    await grant_store.create_family(created)
    fid = created.family_id
    assert not await grant_store.reissue_in_family(fid, 1, issued("old", family_id=fid))
    assert await grant_store.reissue_in_family(fid, 2, issued("retry", family_id=fid))
    assert await grant_store.get_family(fid) == created  # nothing about it changed
    assert [jti for jti, _ in await grant_store.live_tokens(NOW, family_ids=[fid])] == ["retry"]
    assert not await grant_store.rotate_family("fam_unknown", 0, NOW, "", issued("u"))


async def test_a_code_is_redeemed_once_with_its_family_and_token_in_one_step(
    grant_store: GrantStore,
) -> None:
    """RFC 6749 §4.1.2: of parallel redemptions of one code exactly one consumes it and
    issues; the others see it used and write nothing (their ``issue`` may have been asked,
    on PostgreSQL before the code is consumed, but nothing it answered is written)."""
    await grant_store.save_code(grant())
    asked: list[str] = []

    def issuer(n: int) -> Callable[[CodeGrant], Issuance | None]:
        def issue(found: CodeGrant) -> Issuance | None:
            assert found.consumed_at == NOW + 1
            asked.append(f"j{n}")
            created = family(family_id=f"fam_{n}")
            return created, issued(f"j{n}", family_id=created.family_id, code_hash=found.code_hash)

        return issue

    results = await asyncio.gather(
        *(grant_store.redeem_code(code_hash("c"), NOW + 1, issuer(n)) for n in range(6))
    )
    winners = [n for n, (_, consumed, done) in enumerate(results) if consumed and done]
    assert len(winners) == 1
    assert [r for r in results if r[1]] == [results[winners[0]]]
    assert all(found == replace(grant(), consumed_at=NOW + 1) for found, _, _ in results)
    assert f"j{winners[0]}" in asked
    for loser in set(range(6)) - set(winners):
        assert await grant_store.get_family(f"fam_{loser}") is None
    fid = f"fam_{winners[0]}"
    assert await grant_store.family_of_code(code_hash("c")) == fid
    assert (await grant_store.get_family(fid)) is not None
    assert await grant_store.live_tokens(NOW, code_hash=code_hash("c")) == [
        (f"j{winners[0]}", NOW + 300)
    ]
    assert await grant_store.redeem_code(code_hash("nope"), NOW, issuer(9)) == (None, False, False)


async def test_a_refused_redemption_burns_the_code_and_writes_nothing(
    grant_store: GrantStore,
) -> None:
    """RFC 6749 §4.1.2: a code whose checks fail (wrong verifier, say) is still used up;
    a second attempt with the right verifier is a replay, not a redemption."""
    await grant_store.save_code(grant())
    found, consumed, done = await grant_store.redeem_code(code_hash("c"), NOW + 1, lambda _: None)
    assert (found is not None, consumed, done) == (True, True, False)
    assert await grant_store.family_of_code(code_hash("c")) is None
    assert await grant_store.live_tokens(NOW, code_hash=code_hash("c")) == []
    created = family()
    again = await grant_store.redeem_code(
        code_hash("c"), NOW + 2, lambda _: (created, issued("late", family_id=created.family_id))
    )
    assert again[1:] == (False, False)
    assert await grant_store.get_family(created.family_id) is None
