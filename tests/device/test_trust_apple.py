"""App Attest through the device-trust service, on SQLite with in-memory hot state and on
PostgreSQL with Redis: the attestation binds the installation's DPoP key (client data
= challenge "." jkt), one key is one installation, and assertions sign the request with
a counter that only grows (Apple, "Validating apps that connect to your server",
"Verify the attestation" and "Verify the assertion")."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from bastion.clock import FixedClock
from bastion.device import anomalies
from bastion.device.binding import attestation_client_data, request_client_data
from bastion.device.records import Device
from bastion.errors import DeviceRefused, DeviceUnverifiable, ProblemError
from tests.device.conftest import BETA, TEAM, World, device_settings, open_world
from tests.support.app_attest import AppAttestDevice
from tests.support.dpop import DeviceKey
from tests.support.play_integrity import ConsoleKeys

CLIENT = "ios-app"


async def attest(
    world: World, app: AppAttestDevice, jkt: str, client: str = CLIENT, key_id: str | None = None
) -> Device:
    challenge = (await world.trust.challenge(client)).value
    app.client_data = attestation_client_data(challenge, jkt)
    return await world.trust.attest_apple(
        client_id=client,
        key_id=app.key_id_text if key_id is None else key_id,
        attestation_object=app.attestation_object(),
        challenge=challenge,
        dpop_jkt=jkt,
        app_version="1.2.3",
    )


def header(app: AppAttestDevice, counter: int, challenge: str, client_data: bytes) -> list[bytes]:
    key_id = base64.b64encode(app.key_id).decode()
    assertion = base64.b64encode(app.assertion(counter, client_data)).decode()
    return [f'key-id=:{key_id}:, assertion=:{assertion}:, challenge="{challenge}"'.encode()]


async def assert_request(
    world: World,
    app: AppAttestDevice,
    counter: int,
    *,
    body: bytes = b'{"amount": 10}',
    signed_body: bytes | None = None,
    device: Device | None = None,
    client: str = CLIENT,
) -> Device:
    challenge = (await world.trust.challenge(client)).value
    signed = request_client_data("POST", "/api/pay?x=1", signed_body or body, challenge)
    return await world.trust.verify_assertion(
        client_id=client,
        method="POST",
        target="/api/pay?x=1",
        body=body,
        header_values=header(app, counter, challenge, signed),
        device=device,
    )


def reason(refused: pytest.ExceptionInfo[DeviceRefused]) -> str:
    return refused.value.reason


async def test_an_attestation_records_the_installation_and_its_dpop_key(world: World) -> None:
    app, jkt = world.apple(), DeviceKey().jkt
    device = await attest(world, app, jkt)
    stored = await world.devices.by_key_id(app.key_id_text)
    assert stored is not None
    assert stored.device_id == device.device_id
    # App Attest vouches for the app and the hardware, not for the OS: "device".
    assert (stored.platform, stored.level, stored.counter) == ("ios", "device", 0)
    assert stored.dpop_jkt == jkt
    assert stored.client_id == CLIENT
    assert stored.environment == "production"
    assert stored.receipt == b"receipt"
    assert stored.app_version == "1.2.3"
    expected_key = app.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert stored.public_key == expected_key
    (event,) = world.events("device.attestation")
    assert event["outcome"] == "success"
    assert event["details"]["level"] == "device"


async def test_any_declared_bundle_is_accepted(world: World) -> None:
    device = await attest(world, world.apple(f"{TEAM}.{BETA}"), DeviceKey().jkt)
    assert device.level == "device"


@pytest.mark.parametrize("app_id", ["ZZZZZ99999.com.example.app", f"{TEAM}.com.example.clone"])
async def test_a_key_of_another_team_or_bundle_is_the_wrong_app(world: World, app_id: str) -> None:
    with pytest.raises(DeviceRefused) as refused:
        await attest(world, world.apple(app_id), DeviceKey().jkt)
    assert reason(refused) == "wrong_app"
    assert refused.value.status == 403
    # The device learns that it was refused, never which check failed.
    assert "wrong" not in refused.value.detail
    assert "app" not in refused.value.detail.split()
    (event,) = world.events("device.attestation")
    assert (event["outcome"], event["details"]["reason"]) == ("denied", "wrong_app")


async def test_an_attestation_binds_the_dpop_key_it_was_made_for(world: World) -> None:
    """The attested client data names the DPoP key: another key cannot ride on it."""
    app = world.apple()
    challenge = (await world.trust.challenge(CLIENT)).value
    app.client_data = attestation_client_data(challenge, DeviceKey().jkt)
    with pytest.raises(DeviceRefused) as refused:
        await world.trust.attest_apple(
            client_id=CLIENT,
            key_id=app.key_id_text,
            attestation_object=app.attestation_object(),
            challenge=challenge,
            dpop_jkt=DeviceKey().jkt,
            app_version=None,
        )
    assert reason(refused) == "nonce_mismatch"


async def test_a_key_id_attested_from_a_second_installation_is_a_clone(world: World) -> None:
    """One App Attest key lives in one Secure Enclave: a second installation offering it
    is a copy. The first device is marked, so its later requests carry the anomaly."""
    app = world.apple()
    first = await attest(world, app, DeviceKey().jkt)
    with pytest.raises(DeviceRefused) as refused:
        await attest(world, app, DeviceKey().jkt)
    assert reason(refused) == "key_reused"
    assert await anomalies.reason(world.hot, first.device_id) == "key_reused"
    assert len(await world.devices.list_devices(client_id=CLIENT)) == 1


async def test_a_key_id_in_standard_base64_is_the_same_key(world: World) -> None:
    """DCAppAttestService gives the key id in standard base64: accepted as such, and kept
    in one canonical spelling, so the same key written with "+/" and padding is still
    the key another installation holds."""
    app = world.apple()
    while b"+" not in base64.b64encode(app.key_id) and b"/" not in base64.b64encode(app.key_id):
        app = world.apple()  # a key whose id shows the difference between the alphabets
    standard = base64.b64encode(app.key_id).decode()
    first = await attest(world, app, DeviceKey().jkt, key_id=standard)
    assert first.key_id == app.key_id_text
    with pytest.raises(DeviceRefused) as refused:
        await attest(world, app, DeviceKey().jkt, key_id=standard.rstrip("="))
    assert reason(refused) == "key_reused"


async def test_a_challenge_is_accepted_once(world: World) -> None:
    app, jkt = world.apple(), DeviceKey().jkt
    challenge = (await world.trust.challenge(CLIENT)).value
    app.client_data = attestation_client_data(challenge, jkt)
    arguments = {
        "client_id": CLIENT,
        "key_id": app.key_id_text,
        "attestation_object": app.attestation_object(),
        "challenge": challenge,
        "dpop_jkt": jkt,
        "app_version": None,
    }
    await world.trust.attest_apple(**arguments)  # type: ignore[arg-type]
    with pytest.raises(DeviceRefused) as refused:
        await world.trust.attest_apple(**arguments)  # type: ignore[arg-type]
    assert reason(refused) == "challenge_invalid"
    # One answer whatever failed: the audit trail alone names the challenge.
    assert refused.value.detail == "The device attestation was refused."


async def test_a_challenge_issued_to_another_client_is_refused(world: World) -> None:
    app, jkt = world.apple(), DeviceKey().jkt
    challenge = (await world.trust.challenge("other-ios")).value
    app.client_data = attestation_client_data(challenge, jkt)
    with pytest.raises(DeviceRefused) as refused:
        await world.trust.attest_apple(
            client_id=CLIENT,
            key_id=app.key_id_text,
            attestation_object=app.attestation_object(),
            challenge=challenge,
            dpop_jkt=jkt,
            app_version=None,
        )
    assert reason(refused) == "challenge_invalid"


async def test_an_expired_challenge_is_refused(tmp_path: Path, environ: dict[str, str]) -> None:
    clock = FixedClock(time.time())
    settings = device_settings(tmp_path, environ, ConsoleKeys(), device="challenge_lifetime = 60")
    world, database = await open_world(settings, ConsoleKeys(), clock)
    try:
        app, jkt = world.apple(), DeviceKey().jkt
        challenge = await world.trust.challenge(CLIENT)
        assert challenge.expires_at == clock.now() + 60
        app.client_data = attestation_client_data(challenge.value, jkt)
        clock.advance(61)
        with pytest.raises(DeviceRefused) as refused:
            await world.trust.attest_apple(
                client_id=CLIENT,
                key_id=app.key_id_text,
                attestation_object=app.attestation_object(),
                challenge=challenge.value,
                dpop_jkt=jkt,
                app_version=None,
            )
        assert reason(refused) == "challenge_invalid"
    finally:
        await database.close()


async def test_a_client_without_an_app_gets_no_challenge(world: World) -> None:
    for client in ("plain", "nobody"):
        with pytest.raises(ProblemError) as refused:
            await world.trust.challenge(client)
        assert refused.value.status == 400


async def test_an_unreadable_root_is_an_outage_not_a_refusal(world: World) -> None:
    assert world.settings.device.apple_root_file is not None
    world.settings.device.apple_root_file.unlink()
    with pytest.raises(DeviceUnverifiable) as unverifiable:
        await attest(world, world.apple(), DeviceKey().jkt)
    assert unverifiable.value.status == 503
    assert unverifiable.value.reason == "apple_root_unreadable"
    (event,) = world.events("device.attestation")
    assert event["outcome"] == "failure"


async def test_a_reinstalled_app_replaces_the_record_of_its_dpop_key(world: World) -> None:
    """A reinstall keeps the keychain (the DPoP key) but not the App Attest key."""
    jkt = DeviceKey().jkt
    old = await attest(world, world.apple(), jkt)
    new = await attest(world, world.apple(), jkt)
    replaced = await world.devices.get(old.device_id)
    assert replaced is not None
    assert replaced.revoked_reason == "superseded"
    bound = await world.devices.by_jkt(jkt)
    assert bound is not None
    assert bound.device_id == new.device_id


async def test_a_revoked_installation_cannot_attest_its_way_back(world: World) -> None:
    jkt = DeviceKey().jkt
    old = await attest(world, world.apple(), jkt)
    await world.devices.revoke(old.device_id, world.clock.now(), "operator")
    with pytest.raises(DeviceRefused) as refused:
        await attest(world, world.apple(), jkt)
    assert reason(refused) == "device_revoked"


async def test_a_dpop_key_bound_for_another_client_is_refused(world: World) -> None:
    jkt = DeviceKey().jkt
    await attest(world, world.apple(), jkt)
    with pytest.raises(DeviceRefused) as refused:
        await attest(
            world, AppAttestDevice(world.apple().ca, "ZZZZZ99999.com.example.app"), jkt, "other-ios"
        )
    assert reason(refused) == "dpop_key_in_use"


# Assertions.


async def test_assertions_sign_requests_with_a_growing_counter(world: World) -> None:
    app = world.apple()
    device = await attest(world, app, DeviceKey().jkt)
    first = await assert_request(world, app, 1, device=device)
    second = await assert_request(world, app, 5, device=first)
    assert (first.counter, second.counter) == (1, 5)
    stored = await world.devices.get(device.device_id)
    assert stored is not None
    assert stored.counter == 5
    assert [e["outcome"] for e in world.events("device.assertion")] == ["success", "success"]


async def test_an_assertion_over_another_body_is_refused(world: World) -> None:
    app = world.apple()
    device = await attest(world, app, DeviceKey().jkt)
    with pytest.raises(DeviceRefused) as refused:
        await assert_request(
            world,
            app,
            1,
            body=b'{"amount": 10000}',
            signed_body=b'{"amount": 10}',
            device=device,
        )
    assert reason(refused) == "signature_invalid"


async def test_an_equal_counter_on_a_fresh_challenge_is_clone_evidence(world: World) -> None:
    """Apple, "Verify the assertion", step 5: the counter must grow. Two different
    assertions (each over its own fresh challenge) with one counter cannot come from one
    Secure Enclave key, which moves the counter with every signature: refused and the
    device marked."""
    app = world.apple()
    device = await attest(world, app, DeviceKey().jkt)
    await assert_request(world, app, 3, device=device)
    with pytest.raises(DeviceRefused) as refused:
        await assert_request(world, app, 3, device=device)
    assert reason(refused) == "counter_replayed"
    assert await anomalies.reason(world.hot, device.device_id) == "counter_replayed"
    assert world.events("device.assertion")[-1]["details"]["reason"] == "counter_replayed"


async def test_a_lower_counter_is_refused_without_marking_the_device(world: World) -> None:
    """Two requests made in order (counters 1, 2) and delivered the other way round:
    the late one is refused (step 5) but the device is not branded a clone, since a
    Secure Enclave key cannot be copied and every assertion signs a one-time challenge;
    the next assertion is accepted."""
    app = world.apple()
    device = await attest(world, app, DeviceKey().jkt)
    await assert_request(world, app, 2, device=device)
    with pytest.raises(DeviceRefused) as refused:
        await assert_request(world, app, 1, device=device)
    assert reason(refused) == "counter_not_increasing"
    (event,) = [e for e in world.events("device.assertion") if e["details"]["reason"] != "verified"]
    assert event["outcome"] == "denied"
    assert event["details"]["reason"] == "counter_not_increasing"
    assert await anomalies.reason(world.hot, device.device_id) is None
    accepted = await assert_request(world, app, 3, device=device)
    assert accepted.counter == 3


async def test_of_two_racing_assertions_with_one_counter_exactly_one_wins(world: World) -> None:
    """Two copies of one key signing with the same counter at once: the store checks and
    moves the counter in one statement, so only one of them is accepted."""
    app = world.apple()
    device = await attest(world, app, DeviceKey().jkt)
    for counter in (1, 2, 3):
        outcomes = await asyncio.gather(
            assert_request(world, app, counter, device=device),
            assert_request(world, app, counter, device=device),
            return_exceptions=True,
        )
        accepted = [o for o in outcomes if isinstance(o, Device)]
        refused = [o for o in outcomes if isinstance(o, DeviceRefused)]
        assert (len(accepted), len(refused)) == (1, 1), outcomes
        assert refused[0].reason == "counter_replayed"
    stored = await world.devices.get(device.device_id)
    assert stored is not None
    assert stored.counter == 3


async def test_a_revoked_device_cannot_assert(world: World) -> None:
    app = world.apple()
    device = await attest(world, app, DeviceKey().jkt)
    await world.devices.revoke(device.device_id, world.clock.now(), "stolen")
    with pytest.raises(DeviceRefused) as refused:
        await assert_request(world, app, 1, device=device)
    assert reason(refused) == "device_revoked"


async def test_an_assertion_must_come_from_the_callers_device(world: World) -> None:
    """The caller's DPoP key names one device: another installation's key is refused."""
    mine, theirs = world.apple(), world.apple()
    my_device = await attest(world, mine, DeviceKey().jkt)
    await attest(world, theirs, DeviceKey().jkt)
    with pytest.raises(DeviceRefused) as refused:
        await assert_request(world, theirs, 1, device=my_device)
    assert reason(refused) == "wrong_device"


async def test_an_unknown_key_or_another_clients_key_is_refused(world: World) -> None:
    mine = await attest(world, world.apple(), DeviceKey().jkt)
    with pytest.raises(DeviceRefused) as refused:
        await assert_request(world, world.apple(), 1, device=mine)
    assert reason(refused) == "unknown_key"
    app = world.apple()
    device = await attest(world, app, DeviceKey().jkt)
    with pytest.raises(DeviceRefused) as refused:
        await assert_request(world, app, 1, client="other-ios", device=device)
    assert reason(refused) == "unknown_key"


async def test_an_assertion_challenge_is_accepted_once(world: World) -> None:
    app = world.apple()
    device = await attest(world, app, DeviceKey().jkt)
    challenge = (await world.trust.challenge(CLIENT)).value
    signed = request_client_data("GET", "/api/me", b"", challenge)
    arguments = {
        "client_id": CLIENT,
        "method": "GET",
        "target": "/api/me",
        "body": b"",
        "device": device,
    }
    await world.trust.verify_assertion(
        header_values=header(app, 1, challenge, signed),
        **arguments,  # type: ignore[arg-type]
    )
    with pytest.raises(DeviceRefused) as refused:
        await world.trust.verify_assertion(
            header_values=header(app, 2, challenge, signed),
            **arguments,  # type: ignore[arg-type]
        )
    assert reason(refused) == "challenge_invalid"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], "assertion_missing"),
        ([b"key-id=1"], "assertion_malformed"),
        ([b'challenge="x", integrity="t", key-id=:AA==:'], "assertion_malformed"),
        ([b"\xff\xfe"], "assertion_malformed"),
    ],
)
async def test_a_missing_or_malformed_header_is_refused(
    world: World, values: list[bytes], expected: str
) -> None:
    with pytest.raises(DeviceRefused) as refused:
        await world.trust.verify_assertion(
            client_id=CLIENT, method="GET", target="/", body=b"", header_values=values, device=None
        )
    assert reason(refused) == expected
    assert world.events("device.assertion")[-1]["details"]["reason"] == expected


async def test_an_app_attest_assertion_for_a_client_without_an_ios_app_is_refused(
    world: World,
) -> None:
    app = world.apple()
    device = await attest(world, app, DeviceKey().jkt)
    with pytest.raises(DeviceRefused) as refused:
        await assert_request(world, app, 1, client="android-app", device=device)
    assert reason(refused) == "platform_not_declared"


async def test_an_assertion_without_the_callers_device_is_refused(world: World) -> None:
    """A caller whose DPoP key names no attested device cannot borrow an assertion made
    by another genuine installation of the same app: ``unknown_device``, audited."""
    genuine = world.apple()
    await attest(world, genuine, DeviceKey().jkt)
    with pytest.raises(DeviceRefused) as refused:
        await assert_request(world, genuine, 1, device=None)
    assert reason(refused) == "unknown_device"
    event = world.events("device.assertion")[-1]
    assert (event["outcome"], event["details"]["reason"]) == ("denied", "unknown_device")


async def test_an_audit_mode_refusal_is_recorded_as_decided_not_enforced(world: World) -> None:
    with pytest.raises(DeviceRefused):
        await world.trust.verify_assertion(
            client_id=CLIENT,
            method="GET",
            target="/",
            body=b"",
            header_values=[],
            device=None,
            mode="audit",
        )
    event = world.events("device.assertion")[-1]
    assert event["outcome"] == "success"
    assert event["details"]["decided"] == "refused"
    assert event["details"]["mode"] == "audit"
    assert event["details"]["reason"] == "assertion_missing"


# Clone marks cannot be laundered.


async def test_a_flagged_record_superseded_by_its_dpop_key_keeps_the_mark(world: World) -> None:
    """The same DPoP key attesting a fresh App Attest key replaces the record (a
    reinstall), but clone evidence on the old record passes to the new one: the DPoP key
    (RFC 9449) names the installation, so re-attesting is not a way to clear it."""
    jkt = DeviceKey().jkt
    app = world.apple()
    old = await attest(world, app, jkt)
    await assert_request(world, app, 1, device=old)
    with pytest.raises(DeviceRefused):
        await assert_request(world, app, 1, device=old)
    assert await anomalies.reason(world.hot, old.device_id) == "counter_replayed"
    new = await attest(world, world.apple(), jkt)
    assert new.device_id != old.device_id
    assert await anomalies.reason(world.hot, new.device_id) == "counter_replayed"
    newer = await attest(world, world.apple(), jkt)
    assert await anomalies.reason(world.hot, newer.device_id) == "counter_replayed"
    carried = [
        e for e in world.events("device.attestation") if e["details"]["reason"] == "anomaly_carried"
    ]
    assert [e["details"]["replaced_by"] for e in carried] == [new.device_id, newer.device_id]


async def test_a_mark_does_not_expire(world: World) -> None:
    """Only an operator's revocation clears a mark: a copy cannot wait it out."""
    app = world.apple()
    device = await attest(world, app, DeviceKey().jkt)
    await anomalies.mark(world.hot, device.device_id, "counter_replayed")
    world.clock.advance(anomalies.REMEMBERED + 86_400)
    assert await anomalies.reason(world.hot, device.device_id) == "counter_replayed"
