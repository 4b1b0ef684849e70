"""Standard requests' tokens decoded through Google's Play Integrity API, against a local
fake of Google's token endpoint and ``decodeIntegrityToken`` (tests/support/google_play.py).

Google's documents: "Make a standard API request", step "Decrypt and verify the integrity
verdict" (https://developer.android.com/google/play/integrity/standard); the service
account's JWT bearer grant, RFC 7523 §2.1 as Google profiles it
(https://developers.google.com/identity/protocols/oauth2/service-account); Google's error
model (https://cloud.google.com/apis/design/errors).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bastion.clock import FixedClock
from bastion.config import Settings, load_settings
from bastion.device.binding import attestation_client_data, request_hash
from bastion.device.google_api import (
    PLAY_INTEGRITY_SCOPE,
    PlayIntegrityApi,
    ServiceAccount,
    build_decoder,
    grant_assertion,
)
from bastion.device.play_integrity import check_verdict
from bastion.errors import IntegrityError, IntegrityUnavailable
from tests.support.google_play import Answer, FakeGooglePlay, TestAccount, google_error
from tests.support.services import free_port

PACKAGE = "com.example.app"
CERT = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
# What the app passed as requestHash: binding.request_hash of the attestation client data.
HASH = request_hash(attestation_client_data("challenge-1", "thumbprint-of-the-dpop-key"))
TOKEN = "standard-integrity-token-" + "A" * 200


def _verdict(package: str = PACKAGE) -> dict[str, Any]:
    """A Standard request's verdict in Google's documented shape."""
    return {
        "requestDetails": {
            "requestPackageName": package,
            "requestHash": HASH,
            "timestampMillis": str(int(NOW * 1000) - 3_000),
        },
        "appIntegrity": {
            "appRecognitionVerdict": "PLAY_RECOGNIZED",
            "packageName": package,
            "certificateSha256Digest": [CERT],
            "versionCode": "42",
        },
        "deviceIntegrity": {"deviceRecognitionVerdict": ["MEETS_DEVICE_INTEGRITY"]},
        "accountDetails": {"appLicensingVerdict": "LICENSED"},
    }


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def account() -> TestAccount:
    return TestAccount()


@pytest.fixture
async def google(account: TestAccount, clock: FixedClock) -> AsyncIterator[FakeGooglePlay]:
    fake = await FakeGooglePlay(account, clock).start()
    fake.register(TOKEN, PACKAGE, _verdict())
    yield fake
    await fake.close()


def _api(
    account: TestAccount, google: FakeGooglePlay, clock: FixedClock, timeout: float = 2.0
) -> PlayIntegrityApi:
    service = ServiceAccount.from_info(account.info(google.token_uri))
    return PlayIntegrityApi(service, endpoint=google.url, timeout=timeout, clock=clock)


@pytest.fixture
async def api(
    account: TestAccount, google: FakeGooglePlay, clock: FixedClock
) -> AsyncIterator[PlayIntegrityApi]:
    decoder = _api(account, google, clock)
    yield decoder
    await decoder.close()


async def test_the_verdict_google_decodes_passes_the_shared_checks(
    api: PlayIntegrityApi, google: FakeGooglePlay, clock: FixedClock
) -> None:
    payload = await api.decode(PACKAGE, TOKEN)
    verdict = check_verdict(
        payload,
        package_name=PACKAGE,
        certificate_digests=[CERT],
        now=clock.now(),
        max_age=120,
        request_hash=HASH,
    )
    assert verdict.device_labels == {"MEETS_DEVICE_INTEGRITY"}
    assert (google.token_fetches, google.decode_calls) == (1, 1)


async def test_the_grant_assertion_is_the_jwt_google_asks_for(
    api: PlayIntegrityApi, google: FakeGooglePlay, account: TestAccount
) -> None:
    """RFC 7523 §3 with Google's claims: iss = the account, scope, aud = the token
    endpoint, at most an hour; the fake verified its RS256 signature with joserfc."""
    await api.decode(PACKAGE, TOKEN)
    (claims,) = google.assertions
    assert claims["iss"] == account.client_email
    assert claims["scope"] == PLAY_INTEGRITY_SCOPE
    assert claims["aud"] == google.token_uri
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["iat"] == int(NOW)


def test_the_assertion_header_names_the_key_google_checks_it_with(account: TestAccount) -> None:
    """Google finds the public key by ``kid`` (the key file's private_key_id), RS256."""
    service = ServiceAccount.from_info(account.info("https://oauth2.googleapis.com/token"))
    header_segment = grant_assertion(service, NOW).split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(header_segment + "=="))
    assert header == {"alg": "RS256", "typ": "JWT", "kid": account.private_key_id}


async def test_a_grant_signed_by_another_key_is_refused_and_is_an_outage(
    google: FakeGooglePlay, clock: FixedClock
) -> None:
    """A deleted or wrong key: Google refuses the grant (invalid_grant). That is Bastion's
    credential failing, not the device's token: an outage, not a refusal."""
    impostor = TestAccount(client_email=google.account.client_email)
    impostor.private_key_id = google.account.private_key_id
    decoder = _api(impostor, google, clock)
    try:
        with pytest.raises(IntegrityUnavailable) as caught:
            await decoder.decode(PACKAGE, TOKEN)
    finally:
        await decoder.close()
    assert caught.value.reason == "credentials_refused"
    assert google.decode_calls == 0


async def test_one_token_fetch_serves_many_parallel_decodes(
    api: PlayIntegrityApi, google: FakeGooglePlay
) -> None:
    google.token_delay = 0.05
    payloads = await asyncio.gather(*(api.decode(PACKAGE, TOKEN) for _ in range(20)))
    assert all(payload == _verdict() for payload in payloads)
    assert google.token_fetches == 1
    assert google.decode_calls == 20
    assert len(set(google.bearers_seen)) == 1


async def test_the_access_token_is_reused_then_renewed_ahead_of_its_expiry(
    api: PlayIntegrityApi, google: FakeGooglePlay, clock: FixedClock
) -> None:
    await api.decode(PACKAGE, TOKEN)
    clock.advance(1800)
    await api.decode(PACKAGE, TOKEN)
    assert google.token_fetches == 1
    # Four minutes left: the old token still serves, one renewal runs in the background.
    clock.advance(3599 - 1800 - 240)
    await api.decode(PACKAGE, TOKEN)
    for _ in range(50):
        if google.token_fetches == 2:
            break
        await asyncio.sleep(0.01)
    assert google.token_fetches == 2
    await api.decode(PACKAGE, TOKEN)
    assert google.bearers_seen[2] == google.bearers_seen[0] != google.bearers_seen[3]


async def test_an_expired_access_token_is_never_sent(
    api: PlayIntegrityApi, google: FakeGooglePlay, clock: FixedClock
) -> None:
    await api.decode(PACKAGE, TOKEN)
    clock.advance(3599 - 30)  # under a minute left: not used any more
    await api.decode(PACKAGE, TOKEN)
    assert google.token_fetches == 2
    assert google.bearers_seen[0] != google.bearers_seen[1]
    assert google.decode_calls == 2  # no 401 on the way


async def test_a_revoked_access_token_is_fetched_again_once(
    api: PlayIntegrityApi, google: FakeGooglePlay
) -> None:
    await api.decode(PACKAGE, TOKEN)
    google.revoke_all()
    assert await api.decode(PACKAGE, TOKEN) == _verdict()
    assert google.token_fetches == 2
    assert google.decode_calls == 3


async def test_parallel_decodes_refused_with_a_revoked_token_fetch_one_new_token(
    api: PlayIntegrityApi, google: FakeGooglePlay
) -> None:
    await api.decode(PACKAGE, TOKEN)
    google.revoke_all()
    google.token_delay = 0.05
    await asyncio.gather(*(api.decode(PACKAGE, TOKEN) for _ in range(10)))
    assert google.token_fetches == 2


async def test_a_second_401_is_an_outage_not_a_loop(
    api: PlayIntegrityApi, google: FakeGooglePlay
) -> None:
    google.decode_answers.extend([google_error(401, "UNAUTHENTICATED")] * 2)
    with pytest.raises(IntegrityUnavailable) as caught:
        await api.decode(PACKAGE, TOKEN)
    assert caught.value.reason == "denied"
    assert (google.token_fetches, google.decode_calls) == (2, 2)


async def test_an_account_not_linked_to_the_app_is_an_outage(
    api: PlayIntegrityApi, google: FakeGooglePlay
) -> None:
    """403 PERMISSION_DENIED: the Cloud project is not linked to the app in the Play
    Console. An operator's mistake; the device's token was never judged."""
    google.decode_answers.append(google_error(403, "PERMISSION_DENIED"))
    with pytest.raises(IntegrityUnavailable) as caught:
        await api.decode(PACKAGE, TOKEN)
    assert caught.value.reason == "denied"


async def test_a_token_google_cannot_decode_is_refused(
    api: PlayIntegrityApi, google: FakeGooglePlay
) -> None:
    with pytest.raises(IntegrityError) as caught:
        await api.decode(PACKAGE, "not-a-token-google-made")
    assert caught.value.reason == "token_invalid"
    assert not isinstance(caught.value, IntegrityUnavailable)


async def test_another_apps_token_is_refused(api: PlayIntegrityApi, google: FakeGooglePlay) -> None:
    """A token made by another package, sent for this one: Google will not decode it."""
    google.register("token-of-another-app", "com.example.clone", _verdict("com.example.clone"))
    with pytest.raises(IntegrityError) as caught:
        await api.decode(PACKAGE, "token-of-another-app")
    assert caught.value.reason == "token_invalid"


async def test_a_verdict_naming_another_package_fails_the_verdict_check(
    api: PlayIntegrityApi, google: FakeGooglePlay, clock: FixedClock
) -> None:
    google.register("cloned", PACKAGE, _verdict("com.example.clone"))
    payload = await api.decode(PACKAGE, "cloned")
    with pytest.raises(IntegrityError) as caught:
        check_verdict(
            payload,
            package_name=PACKAGE,
            certificate_digests=[CERT],
            now=clock.now(),
            max_age=120,
            request_hash=HASH,
        )
    assert caught.value.reason == "wrong_package"


@pytest.mark.parametrize("token", ["", "x" * 16_385, "has space", "has\nnewline", "é"])
async def test_what_cannot_be_a_token_is_refused_without_a_call(
    api: PlayIntegrityApi, google: FakeGooglePlay, token: str
) -> None:
    with pytest.raises(IntegrityError) as caught:
        await api.decode(PACKAGE, token)
    assert caught.value.reason == "malformed"
    assert google.decode_calls == google.token_fetches == 0


@pytest.mark.parametrize(
    "answer",
    [
        google_error(500, "INTERNAL"),
        google_error(503, "UNAVAILABLE"),
        google_error(429, "RESOURCE_EXHAUSTED"),
        Answer(502, b"<html>bad gateway</html>"),
        # A 400 without Google's INVALID_ARGUMENT is not a judgement on the token.
        Answer(400, b"not json"),
    ],
    ids=["500", "503", "429-quota", "502-html", "400-unreadable"],
)
async def test_server_errors_and_quota_are_an_outage(
    api: PlayIntegrityApi, google: FakeGooglePlay, answer: Answer
) -> None:
    google.decode_answers.append(answer)
    with pytest.raises(IntegrityUnavailable) as caught:
        await api.decode(PACKAGE, TOKEN)
    assert caught.value.reason == "server_error"
    assert not isinstance(caught.value, IntegrityError)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b"{}",
        b'{"tokenPayloadExternal": "a string"}',
        b'{"tokenPayloadExternal": null}',
        b'{"tokenPayloadExternal": {"requestDetails": {}}, "pad": "' + b"x" * 70_000 + b'"}',
    ],
    ids=["not-json", "array", "no-payload", "payload-string", "payload-null", "oversized"],
)
async def test_malformed_answers_are_an_outage(
    api: PlayIntegrityApi, google: FakeGooglePlay, body: bytes
) -> None:
    google.decode_answers.append(Answer(200, body))
    with pytest.raises(IntegrityUnavailable) as caught:
        await api.decode(PACKAGE, TOKEN)
    assert caught.value.reason == "bad_answer"


async def test_a_slow_api_is_an_outage(
    account: TestAccount, google: FakeGooglePlay, clock: FixedClock
) -> None:
    decoder = _api(account, google, clock, timeout=0.2)
    google.decode_answers.append(Answer(200, {"tokenPayloadExternal": _verdict()}, delay=1.0))
    try:
        with pytest.raises(IntegrityUnavailable) as caught:
            await decoder.decode(PACKAGE, TOKEN)
    finally:
        await decoder.close()
    assert caught.value.reason == "timeout"


async def test_a_slow_token_endpoint_is_an_outage(
    account: TestAccount, google: FakeGooglePlay, clock: FixedClock
) -> None:
    decoder = _api(account, google, clock, timeout=0.2)
    google.token_delay = 1.0
    try:
        with pytest.raises(IntegrityUnavailable) as caught:
            await decoder.decode(PACKAGE, TOKEN)
    finally:
        await decoder.close()
    assert caught.value.reason == "timeout"
    assert google.decode_calls == 0


@pytest.mark.parametrize(
    "answer",
    [
        Answer(500, {"error": "internal_failure"}),
        Answer(200, b"{not json"),
        Answer(200, {"access_token": "ya29.x", "token_type": "mac", "expires_in": 3599}),
        Answer(200, {"access_token": "ya29.x", "token_type": "Bearer", "expires_in": 0}),
        Answer(200, {"token_type": "Bearer", "expires_in": 3599}),
    ],
    ids=["500", "not-json", "not-bearer", "no-lifetime", "no-token"],
)
async def test_a_failing_token_endpoint_is_an_outage(
    api: PlayIntegrityApi, google: FakeGooglePlay, answer: Answer
) -> None:
    google.token_answers.append(answer)
    with pytest.raises(IntegrityUnavailable):
        await api.decode(PACKAGE, TOKEN)
    assert google.decode_calls == 0
    # The next decode tries again rather than remembering the failure.
    assert await api.decode(PACKAGE, TOKEN) == _verdict()


async def test_an_unreachable_api_is_an_outage(account: TestAccount, clock: FixedClock) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    service = ServiceAccount.from_info(account.info(f"{closed}/token"))
    decoder = PlayIntegrityApi(service, endpoint=closed, timeout=2.0, clock=clock)
    try:
        with pytest.raises(IntegrityUnavailable) as caught:
            await decoder.decode(PACKAGE, TOKEN)
    finally:
        await decoder.close()
    assert caught.value.reason == "unreachable"


def test_an_outage_is_not_a_refusal() -> None:
    """Callers map refusals (IntegrityError) and outages apart: neither derives from the
    other."""
    assert not issubclass(IntegrityUnavailable, IntegrityError)
    assert not issubclass(IntegrityError, IntegrityUnavailable)


async def test_no_token_or_key_reaches_a_log_line_or_a_repr(
    api: PlayIntegrityApi,
    google: FakeGooglePlay,
    account: TestAccount,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await api.decode(PACKAGE, TOKEN)
    google.revoke_all()
    await api.decode(PACKAGE, TOKEN)
    google.decode_answers.append(google_error(503, "UNAVAILABLE", f"echo {TOKEN}"))
    with pytest.raises(IntegrityUnavailable) as caught:
        await api.decode(PACKAGE, TOKEN)
    with pytest.raises(IntegrityError):
        await api.decode(PACKAGE, "bad-token-never-logged")
    pem = account.info(google.token_uri)["private_key"]
    key_body = pem.splitlines()[5]
    seen = caplog.text + repr(api) + str(caught.value)
    seen += repr(ServiceAccount.from_info(account.info(google.token_uri)))
    for secret in (TOKEN, "bad-token-never-logged", key_body, *google.bearers_seen):
        assert secret not in seen


# build_decoder: the decoder [device.play_integrity] configures.


def _settings(tmp_path: Path, table: str) -> Settings:
    path = tmp_path / "bastion.toml"
    path.write_text(f'data_dir = "data"\n[device.play_integrity]\n{table}', encoding="utf-8")
    return load_settings(path, {"BASTION_MASTER_KEY": base64.b64encode(b"k" * 32).decode()})


def test_no_service_account_no_decoder(tmp_path: Path) -> None:
    assert build_decoder(_settings(tmp_path, "")) is None


async def test_the_configured_decoder_decodes_through_the_configured_endpoint(
    tmp_path: Path, account: TestAccount, google: FakeGooglePlay, clock: FixedClock
) -> None:
    """The key file's token_uri is Google's; ``token_uri`` in the settings replaces it (and
    becomes the assertion's audience), ``endpoint`` points at the API."""
    account.write(tmp_path, "https://oauth2.googleapis.com/token")
    table = (
        'service_account_file = "service-account.json"\n'
        f'endpoint = "{google.url}"\ntoken_uri = "{google.token_uri}"\ntimeout = "2s"\n'
    )
    decoder = build_decoder(_settings(tmp_path, table), clock=clock)
    assert isinstance(decoder, PlayIntegrityApi)
    try:
        assert await decoder.decode(PACKAGE, TOKEN) == _verdict()
    finally:
        await decoder.close()


def _key_file(tmp_path: Path, account: TestAccount, **changes: Any) -> None:
    info: dict[str, Any] = account.info("https://oauth2.googleapis.com/token")
    for name, value in changes.items():
        if value is None:
            info.pop(name)
        else:
            info[name] = value
    (tmp_path / "service-account.json").write_text(json.dumps(info), encoding="utf-8")


def _small_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the size refused
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"client_email": None}, "client_email missing"),
        ({"private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}, "PEM"),
        ({"private_key": _small_key_pem()}, "2048"),
        ({"type": "authorized_user"}, "service_account"),
    ],
    ids=["no-email", "bad-pem", "small-key", "not-a-service-account"],
)
def test_an_unusable_key_file_is_refused_at_start(
    tmp_path: Path, account: TestAccount, changes: dict[str, Any], message: str
) -> None:
    _key_file(tmp_path, account, **changes)
    settings = _settings(tmp_path, 'service_account_file = "service-account.json"\n')
    with pytest.raises(ValueError, match=message) as caught:
        build_decoder(settings)
    assert "PRIVATE KEY" not in str(caught.value)


def test_a_missing_key_file_is_refused_at_start(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 'service_account_file = "nowhere.json"\n')
    with pytest.raises(ValueError, match="cannot read"):
        build_decoder(settings)


@pytest.mark.parametrize(
    "table",
    [
        'endpoint = "http://playintegrity.example.com"\n',
        'token_uri = "http://oauth2.example.com/token"\n',
        'endpoint = "ftp://playintegrity.example.com"\n',
    ],
)
def test_tokens_never_travel_in_the_clear_to_another_machine(
    tmp_path: Path, account: TestAccount, table: str
) -> None:
    _key_file(tmp_path, account)
    settings = _settings(tmp_path, f'service_account_file = "service-account.json"\n{table}')
    with pytest.raises(ValueError, match="https"):
        build_decoder(settings)
