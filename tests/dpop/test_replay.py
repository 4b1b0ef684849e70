"""One use per proof (RFC 9449 §11.1), in the hot state every process shares."""

from __future__ import annotations

import time

from bastion.authserver.dpop import first_use, replay_key
from bastion.oauth.dpop import SUPPORTED_ALGORITHMS, ProofRules, check_proof
from bastion.store.protocols import HotStore
from tests.support.dpop import DeviceKey

RULES = ProofRules(frozenset(SUPPORTED_ALGORITHMS), max_age=60.0, leeway=5.0)
URI = "https://as.example.com/token"


async def test_a_proof_is_accepted_once(hot_store: HotStore) -> None:
    key = DeviceKey()
    proof = check_proof(
        [key.proof("POST", URI)], method="POST", uri=URI, now=time.time(), rules=RULES
    )
    assert await first_use(hot_store, proof, RULES)
    # §11.1: the same jti again, within the window, is a replay.
    assert not await first_use(hot_store, proof, RULES)


async def test_the_same_jti_under_another_key_is_not_a_replay(hot_store: HotStore) -> None:
    # jti values are the device's choice: two devices may pick the same one.
    proofs = [
        check_proof(
            [key.proof("POST", URI, jti="same")],
            method="POST",
            uri=URI,
            now=time.time(),
            rules=RULES,
        )
        for key in (DeviceKey(), DeviceKey())
    ]
    assert await first_use(hot_store, proofs[0], RULES)
    assert await first_use(hot_store, proofs[1], RULES)


async def test_a_jti_is_remembered_for_the_whole_window(hot_store: HotStore) -> None:
    # Shorter and a proof still inside its iat window could be replayed after it.
    proof = check_proof(
        [DeviceKey().proof("POST", URI)], method="POST", uri=URI, now=time.time(), rules=RULES
    )
    assert await first_use(hot_store, proof, RULES)
    ttl = await hot_store.ttl(replay_key(proof))
    assert ttl is not None
    assert RULES.window < ttl <= RULES.window + 1
