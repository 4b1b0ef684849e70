"""One use per DPoP proof (RFC 9449 §11.1), shared by every process through hot state.

A proof is accepted only while its ``iat`` is inside the window, so its ``jti`` needs
remembering for that long and no longer. The key names the proof's key and its ``jti``
(a thumbprint and a random value chosen by the device), hashed so a hostile ``jti``
never becomes part of a store key as written. With Redis every worker and machine sees
the same set; the in-memory hot state serves one process only, as for every other
one-use value. A store that cannot answer raises ``StoreUnavailable``: the proof is
then refused (fail closed), never accepted unchecked.
"""

from __future__ import annotations

import hashlib

from bastion.crypto.jws import b64url
from bastion.oauth.dpop import DpopProof, ProofRules
from bastion.store.protocols import HotStore

# One more second than the window, so a proof dated exactly at its edge cannot outlive
# the memory of its jti through rounding of the store's TTL.
_MARGIN = 1.0


def replay_key(proof: DpopProof) -> str:
    digest = hashlib.sha256(f"{proof.jkt}\x00{proof.jti}".encode()).digest()
    return f"dpop-jti:{b64url(digest)}"


async def first_use(hot: HotStore, proof: DpopProof, rules: ProofRules) -> bool:
    """True the first time this proof is seen; False for a replay."""
    return await hot.set_if_absent(replay_key(proof), b"1", ttl=rules.window + _MARGIN)
