"""The signing key service on a real database: sealing, refresh, signing, refusal."""

from __future__ import annotations

import asyncio
import os

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from bastion.clock import FixedClock
from bastion.config import KeySettings
from bastion.crypto.envelope import Envelope
from bastion.crypto.signing import SigningKeys
from bastion.errors import KeyRingError, MasterKeyError
from bastion.store.protocols import StoredKey
from bastion.store.sql.database import Database
from bastion.store.sql.keys import SqlSigningKeyStore

SETTINGS = KeySettings(publish_ahead=600, max_token_lifetime=3600, refresh_interval=30)


def service(database: Database, master_key: bytes, clock: FixedClock) -> SigningKeys:
    return SigningKeys(SqlSigningKeyStore(database), Envelope(master_key), SETTINGS, clock)


async def test_first_key_is_created_once_and_sealed(migrated: Database, clock: FixedClock) -> None:
    keys = service(migrated, os.urandom(32), clock)
    first = await keys.ensure_signing_key()
    again = await keys.ensure_signing_key()
    assert first.kid == again.kid
    (row,) = await SqlSigningKeyStore(migrated).list_keys()
    assert first.private_pem not in row.sealed_private_key
    assert b"PRIVATE KEY" not in row.sealed_private_key


@pytest.mark.parametrize("alg", ["ES256", "Ed25519"])
async def test_signed_token_verifies_against_the_published_jwks(
    migrated: Database, clock: FixedClock, alg: str
) -> None:
    keys = service(migrated, os.urandom(32), clock)
    await keys.ensure_signing_key()
    await keys.rotate(alg, immediate=True)  # type: ignore[arg-type]
    token = keys.sign_jwt({"sub": "alice", "exp": clock.now() + 60})
    key_set = KeySet.import_key_set(keys.jwks())  # type: ignore[arg-type]
    decoded = jwt.decode(token, key_set, algorithms=[alg])
    assert decoded.claims["sub"] == "alice"
    assert decoded.header["kid"] == keys.ring.signing_key(clock.now()).kid


async def test_token_lifetime_is_bounded_by_the_ring(migrated: Database, clock: FixedClock) -> None:
    """A token outliving max_token_lifetime could outlive its key's publication."""
    keys = service(migrated, os.urandom(32), clock)
    await keys.ensure_signing_key()
    with pytest.raises(KeyRingError):
        keys.sign_jwt({"sub": "a", "exp": clock.now() + 3601})
    with pytest.raises(KeyRingError):
        keys.sign_jwt({"sub": "a"})


async def test_wrong_master_key_refuses_and_leaves_the_ring_untouched(
    migrated: Database, clock: FixedClock
) -> None:
    await service(migrated, os.urandom(32), clock).ensure_signing_key()
    before = await SqlSigningKeyStore(migrated).list_keys()
    intruder = service(migrated, os.urandom(32), clock)
    with pytest.raises(MasterKeyError, match="wrong master key"):
        await intruder.ensure_signing_key()
    assert await SqlSigningKeyStore(migrated).list_keys() == before


async def test_other_workers_see_a_rotation_before_it_signs(
    migrated: Database, clock: FixedClock
) -> None:
    master = os.urandom(32)
    worker_a, worker_b = service(migrated, master, clock), service(migrated, master, clock)
    await worker_a.ensure_signing_key()
    await worker_b.load()
    new = await worker_a.rotate()
    clock.advance(SETTINGS.refresh_interval)
    await worker_b.refresh_if_stale()
    assert new.kid in {k["kid"] for k in worker_b.jwks()["keys"]}
    assert worker_b.ring.signing_key(clock.now()).kid != new.kid
    clock.advance(SETTINGS.publish_ahead)
    assert worker_b.ring.signing_key(clock.now()).kid == new.kid


class CountingStore(SqlSigningKeyStore):
    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self.reads = 0

    async def list_keys(self) -> list[StoredKey]:
        self.reads += 1
        await asyncio.sleep(0.01)  # let concurrent callers pile up behind a slow read
        return await super().list_keys()


async def test_a_burst_of_refreshes_reads_the_ring_once(
    migrated: Database, clock: FixedClock
) -> None:
    store = CountingStore(migrated)
    keys = SigningKeys(store, Envelope(os.urandom(32)), SETTINGS, clock)
    await keys.ensure_signing_key()
    store.reads = 0
    clock.advance(SETTINGS.refresh_interval)
    await asyncio.gather(*(keys.refresh_if_stale() for _ in range(20)))
    assert store.reads == 1
