"""The DeviceStore contract (``bastion.device.records``), run against every
implementation: one App Attest key per installation and one DPoP key per live
installation, counters that only move forward under concurrency (Apple, "Validating
Apps That Connect to Your Server", assertion step 5: the counter must be greater than
the stored one), revocation once, and hostile values refused cleanly."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from dataclasses import replace

import pytest

from bastion.device.records import Device, DeviceStore
from bastion.errors import DeviceKeyInUse, InvalidValue

NOW = 1_700_000_000.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def key_id(name: str) -> str:
    """An App Attest key id: base64url of the SHA-256 of the key (43 characters)."""
    return _b64(hashlib.sha256(b"key:" + name.encode()).digest())


def jkt(name: str) -> str:
    """An RFC 7638 SHA-256 thumbprint (43 characters)."""
    return _b64(hashlib.sha256(b"jwk:" + name.encode()).digest())


def ios(name: str, **changes: object) -> Device:
    device = Device(
        device_id=f"dev-{name}",
        platform="ios",
        client_id="app",
        level="device",
        first_seen=NOW,
        last_seen=NOW,
        attested_at=NOW,
        key_id=key_id(name),
        public_key=b"\x30\x59" + bytes(range(89)),
        counter=0,
        environment="production",
        receipt=b"\x00receipt\xff" * 40,
        app_version="3.2.1",
        dpop_jkt=jkt(name),
    )
    return replace(device, **changes)  # type: ignore[arg-type]


def android(name: str, **changes: object) -> Device:
    device = Device(
        device_id=f"dev-{name}",
        platform="android",
        client_id="app",
        level="strong",
        first_seen=NOW,
        last_seen=NOW,
        attested_at=NOW,
        verdict={
            "device_recognition": ["MEETS_DEVICE_INTEGRITY", "MEETS_STRONG_INTEGRITY"],
            "app_recognition": "PLAY_RECOGNIZED",
            "licensing": "LICENSED",
            "play_protect": "NO_ISSUES",
            "apps_detected": [],
            "version_code": 4021,
        },
        app_version="4.2.0",
        dpop_jkt=jkt(name),
    )
    return replace(device, **changes)  # type: ignore[arg-type]


async def test_a_record_reads_back_as_it_was_added(device_store: DeviceStore) -> None:
    apple = ios("a", user_ids=("u1", "u2"), encryption_key={"kty": "EC", "use": "enc"})
    google = android("b", registered_client_id="app-installation-1")
    await device_store.add(apple)
    await device_store.add(google)
    assert await device_store.get("dev-a") == apple
    assert await device_store.get("dev-b") == google
    assert await device_store.by_key_id(key_id("a")) == apple
    assert await device_store.by_jkt(jkt("b")) == google
    assert await device_store.get("dev-none") is None
    assert await device_store.by_key_id(key_id("none")) is None
    assert await device_store.by_jkt(jkt("none")) is None


async def test_records_without_keys_do_not_collide(device_store: DeviceStore) -> None:
    """Play Integrity devices have no App Attest key, and a device may have no DPoP
    key yet: missing keys are not one shared key."""
    await device_store.add(android("a", dpop_jkt=None))
    await device_store.add(android("b", dpop_jkt=None))
    await device_store.add(ios("c", dpop_jkt=None))
    assert len(await device_store.list_devices()) == 3


async def test_a_cloned_app_attest_key_is_refused(device_store: DeviceStore) -> None:
    """One App Attest key, one installation: a second installation presenting the same
    key id (a cloned app) is refused, even after the first was revoked."""
    await device_store.add(ios("a"))
    clone = ios("a", device_id="dev-clone", dpop_jkt=jkt("clone"))
    with pytest.raises(DeviceKeyInUse):
        await device_store.add(clone)
    await device_store.revoke("dev-a", NOW + 1, "lost")
    with pytest.raises(DeviceKeyInUse):
        await device_store.add(clone)
    assert await device_store.get("dev-clone") is None
    assert (await device_store.by_key_id(key_id("a"))) is not None


async def test_a_dpop_key_binds_one_live_device(device_store: DeviceStore) -> None:
    """The DPoP key bound at attestation cannot be bound by another installation while
    its device stands; once that device is revoked, it is free again."""
    await device_store.add(ios("a"))
    other = android("b", dpop_jkt=jkt("a"))
    with pytest.raises(DeviceKeyInUse):
        await device_store.add(other)
    revoked = await device_store.revoke("dev-a", NOW + 1, "replaced")
    assert revoked is not None
    assert (await device_store.by_jkt(jkt("a"))) == replace(
        revoked, revoked_at=NOW + 1, revoked_reason="replaced"
    )
    await device_store.add(other)
    assert await device_store.by_jkt(jkt("a")) == other, "the live device, not the revoked one"


async def test_a_device_id_is_recorded_once(device_store: DeviceStore) -> None:
    await device_store.add(ios("a"))
    with pytest.raises(DeviceKeyInUse):
        await device_store.add(android("a"))
    assert (await device_store.get("dev-a")) == ios("a")


async def test_of_racing_installations_with_one_key_one_is_recorded(
    device_store: DeviceStore,
) -> None:
    clones = [ios("a", device_id=f"dev-{i}", dpop_jkt=jkt(str(i))) for i in range(6)]
    results = await asyncio.gather(
        *(device_store.add(clone) for clone in clones), return_exceptions=True
    )
    assert results.count(None) == 1
    assert all(isinstance(r, DeviceKeyInUse) for r in results if r is not None)
    assert len(await device_store.list_devices(include_revoked=True)) == 1


async def test_of_racing_installations_with_one_dpop_key_one_is_recorded(
    device_store: DeviceStore,
) -> None:
    clones = [android(str(i), dpop_jkt=jkt("shared")) for i in range(6)]
    results = await asyncio.gather(
        *(device_store.add(clone) for clone in clones), return_exceptions=True
    )
    assert results.count(None) == 1
    assert all(isinstance(r, DeviceKeyInUse) for r in results if r is not None)


async def test_the_counter_only_moves_forward(device_store: DeviceStore) -> None:
    await device_store.add(ios("a"))
    assert await device_store.advance_counter("dev-a", 1, NOW)
    assert await device_store.advance_counter("dev-a", 5, NOW)
    assert not await device_store.advance_counter("dev-a", 5, NOW), "a replayed assertion"
    assert not await device_store.advance_counter("dev-a", 3, NOW), "a counter regression"
    assert not await device_store.advance_counter("dev-a", 0, NOW)
    assert not await device_store.advance_counter("dev-none", 9, NOW)
    device = await device_store.get("dev-a")
    assert device is not None
    assert device.counter == 5


async def test_a_counted_assertion_is_fresh_evidence_of_the_attested_key(
    device_store: DeviceStore,
) -> None:
    """An App Attest assertion is signed by the attested key (Apple, "Validating apps
    that connect to your server"): the attestation's age counts from the latest one."""
    await device_store.add(ios("a"))
    assert await device_store.advance_counter("dev-a", 1, NOW + 30 * 86400)
    device = await device_store.get("dev-a")
    assert device is not None
    assert (device.attested_at, device.last_seen) == (NOW + 30 * 86400, NOW + 30 * 86400)
    # A refused assertion is no evidence, and times never move back.
    assert not await device_store.advance_counter("dev-a", 1, NOW + 40 * 86400)
    assert await device_store.advance_counter("dev-a", 2, NOW + 10 * 86400)
    device = await device_store.get("dev-a")
    assert device is not None
    assert device.attested_at == NOW + 30 * 86400


async def test_of_racing_assertions_with_one_counter_exactly_one_counts(
    device_store: DeviceStore,
) -> None:
    await device_store.add(ios("a", counter=3))
    for counter in (4, 5, 6):
        results = await asyncio.gather(
            *(device_store.advance_counter("dev-a", counter, NOW) for _ in range(8))
        )
        assert results.count(True) == 1
    device = await device_store.get("dev-a")
    assert device is not None
    assert device.counter == 6


async def test_of_racing_assertions_the_highest_counter_stays(device_store: DeviceStore) -> None:
    await device_store.add(ios("a"))
    results = await asyncio.gather(
        *(device_store.advance_counter("dev-a", counter, NOW) for counter in range(1, 9))
    )
    assert results[-1] is True, "nothing is above the highest"
    device = await device_store.get("dev-a")
    assert device is not None
    assert device.counter == 8


async def test_a_counter_no_authenticator_can_send_is_refused(device_store: DeviceStore) -> None:
    await device_store.add(ios("a"))
    assert not await device_store.advance_counter("dev-a", 2**32, NOW)
    assert not await device_store.advance_counter("dev-a", 2**70, NOW)
    assert not await device_store.advance_counter("dev-a", -1, NOW)
    assert await device_store.advance_counter("dev-a", 2**32 - 1, NOW)
    with pytest.raises(InvalidValue):
        await device_store.add(ios("b", counter=2**40))


async def test_seen_moves_last_seen_and_binds_users_once(device_store: DeviceStore) -> None:
    await device_store.add(ios("a"))
    await device_store.seen("dev-a", NOW + 10, user_id="u1")
    await device_store.seen("dev-a", NOW + 20, user_id="u2", app_version="3.3.0")
    await device_store.seen("dev-a", NOW + 30, user_id="u1")
    await device_store.seen("dev-a", NOW + 25)  # reported late by another process
    device = await device_store.get("dev-a")
    assert device is not None
    assert device.user_ids == ("u1", "u2")
    assert device.last_seen == NOW + 30
    assert device.first_seen == NOW
    assert device.app_version == "3.3.0"


async def test_seen_of_an_unknown_device_binds_no_one(device_store: DeviceStore) -> None:
    await device_store.seen("dev-none", NOW, user_id="u1")
    assert await device_store.list_devices(user_id="u1", include_revoked=True) == []
    assert await device_store.get("dev-none") is None


async def test_reattest_records_the_newer_verdict(device_store: DeviceStore) -> None:
    await device_store.add(android("a"))
    newer = {"device_recognition": ["MEETS_BASIC_INTEGRITY"], "version_code": 4100}
    await device_store.reattest(
        "dev-a", level="basic", verdict=newer, app_version="4.3.0", now=NOW + 60
    )
    device = await device_store.get("dev-a")
    assert device is not None
    assert (device.level, device.verdict, device.app_version) == ("basic", newer, "4.3.0")
    assert device.attested_at == NOW + 60
    assert device.last_seen == NOW + 60
    await device_store.reattest("dev-a", level="device", verdict=None, app_version=None, now=NOW)
    device = await device_store.get("dev-a")
    assert device is not None
    assert (device.level, device.verdict, device.app_version) == ("device", newer, "4.3.0")
    assert device.last_seen == NOW + 60


async def test_keys_and_clients_are_set_later(device_store: DeviceStore) -> None:
    await device_store.add(ios("a"))
    jwk = {"kty": "EC", "crv": "P-256", "use": "enc", "x": "eA", "y": "eQ"}
    await device_store.set_encryption_key("dev-a", jwk)
    await device_store.set_registered_client("dev-a", "installation-a")
    device = await device_store.get("dev-a")
    assert device is not None
    assert device.encryption_key == jwk
    assert device.registered_client_id == "installation-a"


async def test_devices_are_listed_most_recently_seen_first(device_store: DeviceStore) -> None:
    for i, name in enumerate("abcd"):
        await device_store.add(ios(name, last_seen=NOW + i, client_id="app" if i % 2 else "other"))
    await device_store.seen("dev-a", NOW + 100, user_id="alice")
    await device_store.seen("dev-c", NOW + 50, user_id="alice")
    await device_store.seen("dev-c", NOW + 50, user_id="bob")
    await device_store.set_registered_client("dev-c", "installation-c")
    await device_store.revoke("dev-d", NOW + 200, "stolen")

    def ids(devices: list[Device]) -> list[str]:
        return [d.device_id for d in devices]

    assert ids(await device_store.list_devices()) == ["dev-a", "dev-c", "dev-b"]
    assert ids(await device_store.list_devices(include_revoked=True)) == [
        "dev-a",
        "dev-c",
        "dev-d",
        "dev-b",
    ]
    assert ids(await device_store.list_devices(user_id="alice")) == ["dev-a", "dev-c"]
    assert ids(await device_store.list_devices(user_id="bob")) == ["dev-c"]
    assert ids(await device_store.list_devices(user_id="nobody")) == []
    assert ids(await device_store.list_devices(client_id="app")) == ["dev-b"]
    assert ids(await device_store.list_devices(client_id="app", include_revoked=True)) == [
        "dev-d",
        "dev-b",
    ]
    assert ids(await device_store.list_devices(client_id="installation-c")) == ["dev-c"]
    assert ids(await device_store.list_devices(user_id="alice", client_id="other")) == [
        "dev-a",
        "dev-c",
    ]
    assert ids(await device_store.list_devices(limit=2)) == ["dev-a", "dev-c"]
    listed = await device_store.list_devices(user_id="bob")
    assert listed[0].user_ids == ("alice", "bob")


async def test_revoke_returns_the_record_before_once(device_store: DeviceStore) -> None:
    device = ios("a", user_ids=("u1",))
    await device_store.add(device)
    await device_store.advance_counter("dev-a", 7, NOW)
    before = await device_store.revoke("dev-a", NOW + 5, "reported stolen")
    assert before == replace(device, counter=7)
    assert not before.revoked
    after = await device_store.get("dev-a")
    assert after is not None
    assert after.revoked
    assert (after.revoked_at, after.revoked_reason) == (NOW + 5, "reported stolen")
    assert await device_store.revoke("dev-a", NOW + 6, "again") is None
    assert await device_store.revoke("dev-none", NOW, "absent") is None
    again = await device_store.get("dev-a")
    assert again is not None
    assert (again.revoked_at, again.revoked_reason) == (NOW + 5, "reported stolen")


async def test_of_racing_revocations_one_returns_the_record(device_store: DeviceStore) -> None:
    await device_store.add(ios("a"))
    results = await asyncio.gather(
        *(device_store.revoke("dev-a", NOW + i, f"r{i}") for i in range(5))
    )
    assert sum(r is not None for r in results) == 1


async def test_a_revoked_device_stands_for_nothing(device_store: DeviceStore) -> None:
    """Its assertions no longer count and a newer attestation does not revive it; its
    record stays, for the audit trail and for ``by_jkt``."""
    await device_store.add(android("a"))
    await device_store.revoke("dev-a", NOW + 1, "compromised")
    assert not await device_store.advance_counter("dev-a", 1, NOW + 2)
    await device_store.reattest(
        "dev-a", level="strong", verdict={"x": 1}, app_version="9", now=NOW + 3
    )
    device = await device_store.get("dev-a")
    assert device is not None
    assert device.revoked
    assert device.attested_at == NOW
    assert device.verdict == android("a").verdict
    assert await device_store.by_jkt(jkt("a")) == device
    assert await device_store.list_devices() == []


@pytest.mark.parametrize(
    "hostile",
    ["x" * 65, "x" * 100_000, "é" * 65, "dev-a\x00"],
)
async def test_overlong_identifiers_are_absent_not_errors(
    device_store: DeviceStore, hostile: str
) -> None:
    await device_store.add(ios("a"))
    assert await device_store.get(hostile) is None
    assert await device_store.by_key_id(hostile) is None
    assert await device_store.by_jkt(hostile) is None
    assert not await device_store.advance_counter(hostile, 1, NOW)
    assert await device_store.revoke(hostile, NOW, "r") is None
    assert await device_store.list_devices(user_id=hostile) == []
    assert await device_store.list_devices(client_id="c" * 129) == []


async def test_overlong_values_are_refused_before_the_database(
    device_store: DeviceStore,
) -> None:
    """``InvalidValue`` (a ``ValueError`` whose message is safe to show) rather than a
    driver error: PostgreSQL would raise on the width, SQLite would store anything."""
    for hostile in (
        ios("a", device_id="d" * 65),
        ios("a", key_id="k" * 65),
        ios("a", dpop_jkt="j" * 65),
        ios("a", client_id="c" * 129),
        ios("a", app_version="v" * 65),
        ios("a", user_ids=("u" * 65,)),
        ios("a", user_ids=("u\x00",)),
        ios("a", key_id="k\x00"),
        ios("a", platform="windows"),
        ios("a", level="ultimate"),
    ):
        with pytest.raises(InvalidValue) as refused:
            await device_store.add(hostile)
        assert len(str(refused.value)) < 100, "the message names the field, not the value"
    assert await device_store.list_devices(include_revoked=True) == []
    await device_store.add(ios("a"))
    with pytest.raises(InvalidValue):
        await device_store.seen("dev-a", NOW, user_id="u" * 65)
    with pytest.raises(InvalidValue):
        await device_store.seen("dev-a", NOW, app_version="v" * 65)
    with pytest.raises(InvalidValue):
        await device_store.revoke("dev-a", NOW, "r" * 201)
    with pytest.raises(InvalidValue):
        await device_store.set_registered_client("dev-a", "c" * 129)
    device = await device_store.get("dev-a")
    assert device == ios("a")


async def test_values_are_data_not_sql(device_store: DeviceStore) -> None:
    sly = "dev-'; DROP TABLE devices; --"
    await device_store.add(ios("a", device_id=sly, client_id='app" OR 1=1 --'))
    await device_store.seen(sly, NOW + 1, user_id="ユーザー")
    device = await device_store.get(sly)
    assert device is not None
    assert device.user_ids == ("ユーザー",)
    assert await device_store.list_devices(client_id="app") == []
