"""Play Integrity through the device-trust service: classic tokens verified with the Play
Console keys of the client, standard ones through Google's decoder (a fake here), both
bound to the challenge and the installation's DPoP key ("Integrity verdicts",
https://developer.android.com/google/play/integrity/verdicts; the nonce and
``requestHash`` of "Make a classic API request" and "Make a standard API request")."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.device.binding import attestation_client_data, request_client_data, request_hash
from bastion.device.records import Device
from bastion.errors import DeviceRefused, DeviceUnverifiable
from tests.device.conftest import World
from tests.support.dpop import DeviceKey
from tests.support.play_integrity import verdict

CLASSIC, STANDARD = "android-app", "android-std"


async def attest(
    world: World,
    jkt: str,
    *,
    client: str = CLASSIC,
    signed_jkt: str | None = None,
    **changes: Any,
) -> tuple[Device, bool]:
    """Attest as the app does: ask for a challenge, get a token over the client data."""
    challenge = (await world.trust.challenge(client)).value
    bound = request_hash(attestation_client_data(challenge, signed_jkt or jkt))
    if client == CLASSIC:
        token = world.console.token(verdict(now=world.clock.now(), nonce=bound, **changes))
    else:
        token = world.decoder.issue(verdict(now=world.clock.now(), request_hash=bound, **changes))
    outcome = await world.trust.attest_google_outcome(
        client_id=client, token=token, challenge=challenge, dpop_jkt=jkt, app_version="7.0"
    )
    return outcome.device, outcome.created


def reason(refused: pytest.ExceptionInfo[DeviceRefused]) -> str:
    return refused.value.reason


async def test_a_classic_verdict_records_the_installation(world: World) -> None:
    jkt = DeviceKey().jkt
    device, created = await attest(world, jkt)
    assert created
    stored = await world.devices.by_jkt(jkt)
    assert stored is not None
    assert (stored.device_id, stored.platform, stored.level) == (
        device.device_id,
        "android",
        "device",
    )
    assert stored.verdict is not None
    assert stored.verdict["device_labels"] == ["MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY"]
    assert stored.verdict["app_recognition"] == "PLAY_RECOGNIZED"
    # A summary of what the verdict said, never the token.
    assert "token" not in str(stored.verdict).lower()
    assert stored.key_id is None
    assert stored.app_version == "7.0"


async def test_the_level_is_the_strongest_label(world: World) -> None:
    strong = ("MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY", "MEETS_STRONG_INTEGRITY")
    assert (await attest(world, DeviceKey().jkt, labels=strong))[0].level == "strong"
    assert (await attest(world, DeviceKey().jkt, labels=("MEETS_BASIC_INTEGRITY",)))[
        0
    ].level == "basic"
    # An emulator Google recognises meets no level; the risk engine weighs it, not refused.
    virtual = await attest(world, DeviceKey().jkt, labels=("MEETS_VIRTUAL_INTEGRITY",))
    assert virtual[0].level == "none"


async def test_the_same_installation_attesting_again_is_updated(world: World) -> None:
    jkt = DeviceKey().jkt
    first, _ = await attest(world, jkt, labels=("MEETS_BASIC_INTEGRITY",))
    world.clock.advance(3600)
    again, created = await attest(
        world, jkt, labels=("MEETS_DEVICE_INTEGRITY", "MEETS_STRONG_INTEGRITY")
    )
    assert not created
    assert again.device_id == first.device_id
    stored = await world.devices.get(first.device_id)
    assert stored is not None
    assert stored.level == "strong"
    assert stored.attested_at == world.clock.now()
    assert [e["details"]["created"] for e in world.events("device.attestation")] == [True, False]


async def test_a_standard_verdict_is_decoded_by_google(world: World) -> None:
    device, created = await attest(world, DeviceKey().jkt, client=STANDARD)
    assert created
    assert device.level == "device"
    assert world.decoder.calls[0][0] == "com.example.app"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"package": "com.example.clone"}, "wrong_package"),
        ({"digest": "A" * 43}, "unknown_certificate"),
        ({"recognition": "UNRECOGNIZED_VERSION"}, "unrecognized_app"),
        ({"age": 600.0}, "stale"),
    ],
)
@pytest.mark.parametrize("client", [CLASSIC, STANDARD])
async def test_a_verdict_for_another_app_or_an_old_one_is_refused(
    world: World, client: str, changes: dict[str, Any], expected: str
) -> None:
    with pytest.raises(DeviceRefused) as refused:
        await attest(world, DeviceKey().jkt, client=client, **changes)
    assert reason(refused) == expected
    (event,) = world.events("device.attestation")
    assert (event["outcome"], event["details"]["reason"]) == ("denied", expected)


@pytest.mark.parametrize(
    ("client", "expected"), [(CLASSIC, "nonce_mismatch"), (STANDARD, "request_hash_mismatch")]
)
async def test_a_verdict_made_for_another_dpop_key_is_refused(
    world: World, client: str, expected: str
) -> None:
    """The verdict names the challenge and the DPoP key: a token fetched by a genuine
    device cannot vouch for a script's key."""
    with pytest.raises(DeviceRefused) as refused:
        await attest(world, DeviceKey().jkt, client=client, signed_jkt=DeviceKey().jkt)
    assert reason(refused) == expected


async def test_a_token_under_other_keys_is_refused(world: World) -> None:
    from tests.support.play_integrity import ConsoleKeys

    challenge = (await world.trust.challenge(CLASSIC)).value
    jkt = DeviceKey().jkt
    bound = request_hash(attestation_client_data(challenge, jkt))
    token = ConsoleKeys().token(verdict(now=world.clock.now(), nonce=bound))
    with pytest.raises(DeviceRefused) as refused:
        await world.trust.attest_google(
            client_id=CLASSIC, token=token, challenge=challenge, dpop_jkt=jkt, app_version=None
        )
    assert reason(refused) == "decryption_failed"


async def test_google_unreachable_is_an_outage_not_a_refusal(world: World) -> None:
    world.decoder.down = True
    with pytest.raises(DeviceUnverifiable) as unverifiable:
        await attest(world, DeviceKey().jkt, client=STANDARD)
    assert unverifiable.value.status == 503
    assert unverifiable.value.reason == "decoder_unavailable"
    assert "retry-after" in unverifiable.value.headers
    (event,) = world.events("device.attestation")
    assert (event["outcome"], event["details"]["reason"]) == ("failure", "decoder_unavailable")


async def test_console_keys_that_cannot_be_read_are_an_outage(world: World) -> None:
    android = world.settings.oauth.clients[2].device
    assert android is not None
    assert android.android is not None
    assert android.android.decryption_key_file is not None
    android.android.decryption_key_file.write_text("not base64 !")
    with pytest.raises(DeviceUnverifiable) as unverifiable:
        await attest(world, DeviceKey().jkt)
    assert unverifiable.value.reason == "console_keys_unreadable"


async def test_a_dpop_key_bound_for_one_app_cannot_attest_for_another(world: World) -> None:
    jkt = DeviceKey().jkt
    await attest(world, jkt)
    with pytest.raises(DeviceRefused) as refused:
        await attest(world, jkt, client=STANDARD)
    assert reason(refused) == "dpop_key_in_use"


# Assertions: a fresh verdict over one request, from the caller's device.


async def assert_request(
    world: World, device: Device | None, *, client: str = CLASSIC, body: bytes = b"{}"
) -> Device:
    challenge = (await world.trust.challenge(client)).value
    signed = request_hash(request_client_data("POST", "/api/pay", b"{}", challenge))
    if client == CLASSIC:
        token = world.console.token(verdict(now=world.clock.now(), nonce=signed))
    else:
        token = world.decoder.issue(verdict(now=world.clock.now(), request_hash=signed))
    value = f'integrity="{token}", challenge="{challenge}"'.encode()
    return await world.trust.verify_assertion(
        client_id=client,
        method="POST",
        target="/api/pay",
        body=body,
        header_values=[value],
        device=device,
    )


@pytest.mark.parametrize("client", [CLASSIC, STANDARD])
async def test_a_verdict_over_the_request_is_an_assertion(world: World, client: str) -> None:
    device, _ = await attest(world, DeviceKey().jkt, client=client)
    world.clock.advance(60)
    asserted = await assert_request(world, device, client=client)
    assert asserted.device_id == device.device_id
    assert asserted.attested_at == world.clock.now()


async def test_a_verdict_over_another_body_is_refused(world: World) -> None:
    device, _ = await attest(world, DeviceKey().jkt)
    with pytest.raises(DeviceRefused) as refused:
        await assert_request(world, device, body=b'{"amount": 1}')
    assert reason(refused) == "nonce_mismatch"


async def test_a_verdict_names_no_installation_so_it_needs_the_callers_device(
    world: World,
) -> None:
    with pytest.raises(DeviceRefused) as refused:
        await assert_request(world, None)
    assert reason(refused) == "unknown_device"
    device, _ = await attest(world, DeviceKey().jkt)
    await world.devices.revoke(device.device_id, world.clock.now(), "operator")
    revoked = await world.devices.get(device.device_id)
    with pytest.raises(DeviceRefused) as refused:
        await assert_request(world, revoked)
    assert reason(refused) == "device_revoked"
