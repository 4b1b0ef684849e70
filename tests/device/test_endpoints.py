"""The device endpoints on a real socket: challenge, App Attest and Play Integrity
attestation under a DPoP proof (RFC 9449 §4: no token, so no ``ath``), the encryption
key, and their refusals as RFC 9457 problem details."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bastion import wiring
from bastion.audit.sinks import MemorySink
from bastion.authserver.installations import parse_attestation
from bastion.config import Settings
from bastion.device.binding import attestation_client_data, request_client_data, request_hash
from bastion.web.app import build_app
from tests.device.conftest import APP_ID, CA, device_settings
from tests.support import schema
from tests.support.app_attest import AppAttestDevice
from tests.support.dpop import DeviceKey
from tests.support.play_integrity import ConsoleKeys, FakeDecoder, verdict
from tests.support.services import unique_name
from tests.support.tcpproxy import TcpProxy, via
from tests.support.upstream import serve_in_thread

ISSUER = "http://127.0.0.1:8000"


@dataclass
class Served:
    url: str
    settings: Settings
    console: ConsoleKeys
    decoder: FakeDecoder
    audit: MemorySink
    http: httpx.Client

    def events(self, action: str) -> list[dict[str, Any]]:
        return [r for r in self.audit.records if r["action"] == action]

    def challenge(self, client_id: str) -> str:
        answer = self.http.post("/device/challenge", json={"client_id": client_id})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["challenge"])

    def attest_apple(
        self, key: DeviceKey, app: AppAttestDevice | None = None, client_id: str = "ios-app"
    ) -> httpx.Response:
        app = app or AppAttestDevice(CA, APP_ID)
        challenge = self.challenge(client_id)
        app.client_data = attestation_client_data(challenge, key.jkt)
        body = {
            "client_id": client_id,
            "key_id": app.key_id_text,
            "attestation_object": base64.b64encode(app.attestation_object()).decode(),
            "challenge": challenge,
            "app_version": "1.0",
        }
        proof = key.proof("POST", f"{ISSUER}/device/attest/apple")
        return self.http.post("/device/attest/apple", json=body, headers={"DPoP": proof})

    def attest_google(self, key: DeviceKey, **changes: Any) -> httpx.Response:
        challenge = self.challenge("android-app")
        nonce = request_hash(attestation_client_data(challenge, key.jkt))
        token = self.console.token(verdict(now=time.time(), nonce=nonce, **changes))
        body = {"client_id": "android-app", "integrity_token": token, "challenge": challenge}
        proof = key.proof("POST", f"{ISSUER}/device/attest/google")
        return self.http.post("/device/attest/google", json=body, headers={"DPoP": proof})


@contextmanager
def served(
    tmp_path: Path, environ: dict[str, str], *, device: str = "", extra: str = ""
) -> Iterator[Served]:
    console, decoder, sink = ConsoleKeys(), FakeDecoder(), MemorySink()
    settings = device_settings(tmp_path, environ, console, device=device, extra=extra)
    asyncio.run(schema.migrate(settings))
    app = build_app(
        settings,
        lambda: wiring.open_runtime(
            settings, environ=environ, audit_sinks=(sink,), decoder=decoder
        ),
    )
    with serve_in_thread(app, lifespan="on") as url, httpx.Client(base_url=url) as http:
        yield Served(url, settings, console, decoder, sink, http)


@pytest.fixture
def server(tmp_path: Path, environ: dict[str, str]) -> Iterator[Served]:
    with served(tmp_path, environ) as running:
        yield running


def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["status"] == status
    return body


def test_a_challenge_is_issued_to_a_declared_app_and_never_cached(server: Served) -> None:
    answer = server.http.post("/device/challenge", json={"client_id": "ios-app"})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"challenge", "expires_in"}
    assert len(body["challenge"]) == 43
    assert 0 < body["expires_in"] <= 300
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b'{"client_id": "nobody"}', {}, 400),
        (b'{"client_id": "plain"}', {}, 400),
        (b'{"client_id": ', {}, 400),
        (b"[]", {}, 400),
        (b'{"client_id": "ios-app", "extra": 1}', {}, 400),
        (b'{"client_id": 7}', {}, 400),
        (b'{"client_id": "ios-app"}', {"content-type": "text/plain"}, 415),
        (b'{"client_id": "' + b"x" * 40_000 + b'"}', {}, 413),
    ],
)
def test_a_challenge_request_that_is_not_right_is_a_problem(
    server: Served, content: bytes, headers: dict[str, str], status: int
) -> None:
    sent = {"content-type": "application/json", **headers}
    answer = server.http.post("/device/challenge", content=content, headers=sent)
    body = problem(answer, status)
    assert "xxxx" not in answer.text
    if b"extra" in content:
        assert body["errors"] == [{"pointer": "/extra", "detail": "not an accepted member"}]


def test_an_app_attests_with_its_dpop_key(server: Served) -> None:
    key = DeviceKey()
    answer = server.attest_apple(key)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["platform"] == "ios"
    assert body["level"] == "device"
    assert answer.headers["cache-control"] == "no-store"
    (event,) = server.events("device.attestation")
    assert event["target"] == f"device:{body['device_id']}"


def test_an_attestation_without_a_dpop_proof_is_refused(server: Served) -> None:
    app = AppAttestDevice(CA, APP_ID)
    challenge = server.challenge("ios-app")
    body = {
        "client_id": "ios-app",
        "key_id": app.key_id_text,
        "attestation_object": base64.b64encode(app.attestation_object()).decode(),
        "challenge": challenge,
    }
    answer = server.http.post("/device/attest/apple", json=body)
    problem(answer, 401)
    assert answer.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    wrong = DeviceKey().proof("POST", f"{ISSUER}/device/attest/google")
    problem(server.http.post("/device/attest/apple", json=body, headers={"DPoP": wrong}), 401)


def test_a_cloned_app_is_refused_without_saying_why(server: Served) -> None:
    app = AppAttestDevice(CA, APP_ID)
    assert server.attest_apple(DeviceKey(), app).status_code == 201
    clone = AppAttestDevice(CA, APP_ID, key=app.key)
    body = problem(server.attest_apple(DeviceKey(), clone), 403)
    assert body["type"] == "urn:bastion:problem:device-refused"
    assert body["detail"] == "The device attestation was refused."
    assert server.events("device.attestation")[-1]["details"]["reason"] == "key_reused"


def test_a_play_integrity_verdict_attests_and_attests_again(server: Served) -> None:
    key = DeviceKey()
    first = server.attest_google(key)
    assert first.status_code == 201, first.text
    again = server.attest_google(key, labels=("MEETS_STRONG_INTEGRITY",))
    assert again.status_code == 200
    assert again.json()["device_id"] == first.json()["device_id"]
    assert again.json()["level"] == "strong"
    problem(server.attest_google(DeviceKey(), package="com.example.clone"), 403)


def test_google_unreachable_answers_503_not_500(server: Served) -> None:
    server.decoder.down = True
    challenge = server.challenge("android-std")
    key = DeviceKey()
    body = {"client_id": "android-std", "integrity_token": "t" * 40, "challenge": challenge}
    proof = key.proof("POST", f"{ISSUER}/device/attest/google")
    answer = server.http.post("/device/attest/google", json=body, headers={"DPoP": proof})
    assert problem(answer, 503)["type"] == "urn:bastion:problem:device-unverifiable"
    assert answer.headers["retry-after"] == "30"


def _jwk(**changes: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = {**DeviceKey().jwk(), "use": "enc", "alg": "ECDH-ES+A256KW"}
    for name, value in changes.items():
        if value is None:
            jwk.pop(name)
        else:
            jwk[name] = value
    return jwk


def test_an_attested_installation_registers_its_encryption_key(server: Served) -> None:
    key = DeviceKey()
    device_id = server.attest_apple(key).json()["device_id"]
    jwk = _jwk(kid="enc-1")
    proof = key.proof("PUT", f"{ISSUER}/device/encryption-key")
    answer = server.http.put("/device/encryption-key", json={"jwk": jwk}, headers={"DPoP": proof})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"device_id": device_id, "encryption_key": jwk}
    stranger = DeviceKey().proof("PUT", f"{ISSUER}/device/encryption-key")
    refused = server.http.put(
        "/device/encryption-key", json={"jwk": jwk}, headers={"DPoP": stranger}
    )
    assert problem(refused, 403)["type"] == "urn:bastion:problem:device-refused"


@pytest.mark.parametrize(
    "jwk",
    [
        _jwk(d=base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()),
        _jwk(crv="P-384"),
        _jwk(use="sig"),
        _jwk(use=None),
        _jwk(alg="RSA-OAEP"),
        _jwk(x="A" * 43),
        {"kty": "RSA", "n": "AQAB", "e": "AQAB", "use": "enc"},
        _jwk(x5c=["MII"]),
    ],
    ids=["private", "p384", "sig", "no-use", "alg", "off-curve", "rsa", "x5c"],
)
def test_an_encryption_key_that_is_not_a_public_p256_enc_key_is_refused(
    server: Served, jwk: dict[str, Any]
) -> None:
    key = DeviceKey()
    server.attest_apple(key)
    proof = key.proof("PUT", f"{ISSUER}/device/encryption-key")
    answer = server.http.put("/device/encryption-key", json={"jwk": jwk}, headers={"DPoP": proof})
    assert problem(answer, 400)["errors"][0]["pointer"] == "/jwk"


def test_the_device_endpoints_are_rate_limited(tmp_path: Path, environ: dict[str, str]) -> None:
    extra = '[guards.endpoints]\ndevice = [{ name = "device", rate = 2, window = 60, burst = 2 }]'
    with served(tmp_path, environ, extra=extra) as server:
        statuses = [
            server.http.post("/device/challenge", json={"client_id": "ios-app"}).status_code
            for _ in range(4)
        ]
    assert statuses[:2] == [200, 200]
    assert statuses[2:] == [429, 429]


def test_hot_state_down_fails_closed_with_503(
    tmp_path: Path, proxies: tuple[TcpProxy, TcpProxy], redis_url: str, environ: dict[str, str]
) -> None:
    """A challenge that cannot be stored or checked is never issued or accepted."""
    _, hot = proxies
    env = {**environ, "BASTION_REDIS_URL": via(redis_url, hot)}
    extra = f'[hot_state]\nkey_prefix = "{unique_name("device")}:"'
    with served(tmp_path, env, extra=extra) as server:
        key = DeviceKey()
        app = AppAttestDevice(CA, APP_ID)
        challenge = server.challenge("ios-app")
        hot.stop()
        answer = server.http.post("/device/challenge", json={"client_id": "ios-app"})
        assert problem(answer, 503)["type"] == "urn:bastion:problem:store-unavailable"
        app.client_data = attestation_client_data(challenge, key.jkt)
        body = {
            "client_id": "ios-app",
            "key_id": app.key_id_text,
            "attestation_object": base64.b64encode(app.attestation_object()).decode(),
            "challenge": challenge,
        }
        proof = key.proof("POST", f"{ISSUER}/device/attest/apple")
        answer = server.http.post("/device/attest/apple", json=body, headers={"DPoP": proof})
        assert answer.status_code == 503
        hot.start()


def test_an_encryption_key_sent_with_an_assertion_needs_a_valid_one(server: Served) -> None:
    key, app = DeviceKey(), AppAttestDevice(CA, APP_ID)
    assert server.attest_apple(key, app).status_code == 201
    content = orjson.dumps({"jwk": _jwk()})

    def put(counter: int, signed_body: bytes) -> httpx.Response:
        challenge = server.challenge("ios-app")
        client_data = request_client_data("PUT", "/device/encryption-key", signed_body, challenge)
        assertion = base64.b64encode(app.assertion(counter, client_data)).decode()
        key_id = base64.b64encode(app.key_id).decode()
        header = f'key-id=:{key_id}:, assertion=:{assertion}:, challenge="{challenge}"'
        return server.http.put(
            "/device/encryption-key",
            content=content,
            headers={
                "content-type": "application/json",
                "DPoP": key.proof("PUT", f"{ISSUER}/device/encryption-key"),
                "Device-Assertion": header,
            },
        )

    assert put(1, content).status_code == 200
    problem(put(2, b'{"jwk": {}}'), 403)


def test_registration_with_hot_state_down_answers_oauth_error_json(
    tmp_path: Path, proxies: tuple[TcpProxy, TcpProxy], redis_url: str, environ: dict[str, str]
) -> None:
    """RFC 7591 §3.2.2 / RFC 6749 §5.2: /register is an OAuth endpoint, so an outage is
    ``{"error": "temporarily_unavailable"}`` with 503 and ``Retry-After``, never
    problem details."""
    _, hot = proxies
    env = {**environ, "BASTION_REDIS_URL": via(redis_url, hot)}
    extra = (
        f'[hot_state]\nkey_prefix = "{unique_name("device")}:"\n'
        "[oauth.registration]\nenabled = true\n"
    )
    with served(tmp_path, env, device="attested_registration = true", extra=extra) as server:
        key, app = DeviceKey(), AppAttestDevice(CA, APP_ID)
        challenge = server.challenge("ios-app")
        app.client_data = attestation_client_data(challenge, key.jkt)
        body = {
            "software_id": "ios-app",
            "device_attestation": {
                "platform": "apple",
                "key_id": app.key_id_text,
                "attestation_object": base64.b64encode(app.attestation_object()).decode(),
                "challenge": challenge,
            },
        }
        hot.stop()
        try:
            answer = server.http.post(
                "/register",
                json=body,
                headers={"DPoP": key.proof("POST", f"{ISSUER}/register")},
            )
        finally:
            hot.start()
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"] == "temporarily_unavailable"
    assert answer.headers["retry-after"]


# Bodies read strictly.


@pytest.mark.parametrize(
    "content",
    [
        b'{"client_id": "plain", "client_id": "ios-app"}',
        b'{"client_id": "ios-app", "client_id": "ios-app"}',
    ],
)
def test_a_member_named_twice_is_refused(server: Served, content: bytes) -> None:
    """RFC 8259 §4: names SHOULD be unique, and parsers disagree on which of two counts."""
    answer = server.http.post(
        "/device/challenge", content=content, headers={"content-type": "application/json"}
    )
    problem(answer, 400)


def test_a_chunked_body_past_the_limit_is_refused_without_reading_on(server: Served) -> None:
    """413 once past the endpoint's own 32 KiB, not after the server's general 1 MiB."""
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"client_id": "'
        for _ in range(300):  # past the server's general 1 MiB too
            sent += 4096
            yield b"a" * 4096

    answer = server.http.post(
        "/device/challenge", content=chunks(), headers={"content-type": "application/json"}
    )
    body = problem(answer, 413)
    assert "32768" in body["detail"]


@pytest.mark.parametrize("padding", [0, 1, 2])
def test_padded_standard_base64_is_accepted(server: Served, padding: int) -> None:
    """The attestation object in standard base64 (RFC 4648 §4) with its padding, as
    Swift's ``base64EncodedString()`` writes it: none, "=" or "==", all accepted (and the
    same bytes unpadded or in the URL-safe alphabet, §5)."""
    from bastion.web.device import _bytes

    data = secrets.token_bytes(30 + (3 - padding) % 3)
    encoded = base64.b64encode(data).decode()
    assert len(encoded) - len(encoded.rstrip("=")) == padding
    assert _bytes(encoded, "/x") == data
    assert _bytes(encoded.rstrip("="), "/x") == data
    assert _bytes(base64.urlsafe_b64encode(data).decode(), "/x") == data
    # The same rule where attested registration reads it (RFC 7591 ``device_attestation``).
    parsed = parse_attestation(
        {"platform": "apple", "key_id": "A" * 43, "attestation_object": encoded, "challenge": "c"}
    )
    assert parsed.attestation_object == data
