"""Attestation-gated dynamic registration (RFC 7591) on a served Bastion, over a real socket.

An installation registers its own public, DPoP-bound client with a verified attestation
in place of an initial access token: App Attest (Apple, "Validating apps that connect to
your server"; a test CA stands in for Apple's root) or a Play Integrity classic token
("Make a classic API request"; test Play Console keys), made over
``challenge "." jkt`` of the DPoP key whose proof (RFC 9449 §4) signs the registration.
Refusals are RFC 7591 §3.2.2 errors; an attestation that cannot be judged fails closed
with 503.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bastion import wiring
from bastion.audit.sinks import MemorySink
from bastion.clock import SystemClock
from bastion.config import Settings, load_settings
from bastion.device.binding import (
    attestation_client_data,
    b64url,
    request_client_data,
    request_hash,
)
from bastion.device.google_api import PlayIntegrityApi, ServiceAccount
from bastion.oauth import pkce
from bastion.runtime import Runtime
from bastion.store.sql.devices import SqlDeviceStore
from bastion.store.sql.users import SqlUserStore
from bastion.web.app import build_app
from tests.authserver.conftest import PASSWORD, approve, password_hash, query_of, sign_in
from tests.conftest import write_config
from tests.support import schema
from tests.support.app_attest import AppAttestDevice, AttestationCA
from tests.support.dpop import DeviceKey
from tests.support.google_play import FakeGooglePlay, TestAccount, serving_in_thread
from tests.support.play_integrity import ConsoleKeys, verdict
from tests.support.services import free_port
from tests.support.upstream import serve_in_thread

TEAM = "ABCDE12345"
BUNDLE = "com.example.shop"
PACKAGE = "com.example.shop"
CERT = b64url(bytes(range(32)))
REDIRECT = "com.example.shop:/cb"
OTHER_REDIRECT = "com.example.shop:/other"
VERIFIER = "verifier-" + "v" * 50
RACERS = 6

CONFIG = """
issuer = "{issuer}"
[device]
attested_registration = {attested}
apple_root_file = "apple-root.pem"
[oauth.registration]
enabled = true
[[guards.endpoints.registration]]
name = "registration"
rate = 1000
window = "1h"
burst = 1000
[[guards.endpoints.device]]
name = "device"
rate = 1000
window = "1h"
burst = 1000
[[oauth.clients]]
client_id = "shop"
name = "Shop"
type = "public"
redirect_uris = ["{redirect}", "{other}"]
scopes = ["openid", "profile", "orders:read"]
resources = ["https://api.example.com"]
[oauth.clients.device.apple]
team_id = "{team}"
bundle_ids = ["{bundle}"]
[oauth.clients.device.android]
package_name = "{package}"
certificate_digests = ["{cert}"]
decryption_key_file = "pi-decryption.txt"
verification_key_file = "pi-verify.txt"
[[oauth.clients]]
client_id = "web"
type = "public"
redirect_uris = ["https://web.example.com/cb"]
scopes = ["openid"]
[[oauth.clients]]
client_id = "ios-only"
type = "public"
redirect_uris = ["com.example.ios:/cb"]
scopes = ["openid"]
[oauth.clients.device.apple]
team_id = "{team}"
bundle_ids = ["com.example.ios"]
[[oauth.clients]]
client_id = "standard"
type = "public"
redirect_uris = ["com.example.standard:/cb"]
scopes = ["openid"]
[oauth.clients.device.android]
package_name = "com.example.standard"
certificate_digests = ["{cert}"]
[[gateway.upstreams]]
name = "api"
url = "http://127.0.0.1:9"
credential = {{ type = "none" }}
[[gateway.routes]]
methods = ["POST"]
path = "/pay"
upstream = "api"
auth = "bastion"
device = {{ require_assertion = true }}
"""


@dataclass
class Served:
    url: str
    http: httpx.Client
    settings: Settings
    ca: AttestationCA
    play: ConsoleKeys
    audit: MemorySink

    @property
    def register_uri(self) -> str:
        return f"{self.url}/register"

    def events(self, action: str) -> list[dict[str, Any]]:
        return [r for r in self.audit.records if r["action"] == action]

    def challenge(self, client_id: str = "shop") -> str:
        answer = self.http.post("/device/challenge", json={"client_id": client_id})
        assert answer.status_code == 200, answer.text
        value: str = answer.json()["challenge"]
        return value

    def register(
        self, body: dict[str, Any], key: DeviceKey | None, **headers: str
    ) -> httpx.Response:
        if key is not None:
            headers["DPoP"] = key.proof("POST", self.register_uri)
        return self.http.post("/register", json=body, headers=headers)

    def apple(
        self,
        key: DeviceKey,
        attest: AppAttestDevice | None = None,
        challenge: str | None = None,
        software_id: str = "shop",
        **metadata: Any,
    ) -> dict[str, Any]:
        """A registration body with an App Attest attestation over challenge.jkt."""
        attest = attest or AppAttestDevice(self.ca, f"{TEAM}.{BUNDLE}")
        challenge = challenge or self.challenge(software_id)
        client_data = attestation_client_data(challenge, key.jkt)
        evidence = attest.attestation_object(client_data=client_data)
        return {
            "software_id": software_id,
            "software_version": "1.4.2",
            "device_attestation": {
                "platform": "apple",
                "key_id": b64url(attest.key_id),
                "attestation_object": base64.b64encode(evidence).decode(),
                "challenge": challenge,
            },
            **metadata,
        }

    def google(
        self,
        key: DeviceKey,
        challenge: str | None = None,
        software_id: str = "shop",
        package: str = PACKAGE,
        **metadata: Any,
    ) -> dict[str, Any]:
        """A registration body with a Play Integrity classic token over challenge.jkt."""
        challenge = challenge or self.challenge(software_id)
        client_data = attestation_client_data(challenge, key.jkt)
        # A classic request: the app passed base64url(SHA-256(client data)) as its nonce.
        nonce = request_hash(client_data)
        token = self.play.token(verdict(now=time.time(), nonce=nonce, package=package, digest=CERT))
        return {
            "software_id": software_id,
            "device_attestation": {
                "platform": "google",
                "integrity_token": token,
                "challenge": challenge,
            },
            **metadata,
        }


def _prepare(settings: Settings) -> None:
    async def run() -> None:
        await schema.migrate(settings)
        database = wiring.open_database(settings)
        try:
            await SqlUserStore(database).create(
                "alice", password_hash(settings.accounts.passwords), 0.0
            )
        finally:
            await database.close()

    asyncio.run(run())


@contextmanager
def serving(
    directory: Path,
    database_url: str,
    master_key_b64: str,
    *,
    attested: bool = True,
    decoder_endpoint: str | None = None,
    google: FakeGooglePlay | None = None,
) -> Iterator[Served]:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    ca, play = AttestationCA.make(datetime.now(UTC)), ConsoleKeys()
    (directory / "apple-root.pem").write_bytes(ca.root_pem())
    play.write(directory)
    text = CONFIG.format(
        issuer=issuer,
        attested=str(attested).lower(),
        redirect=REDIRECT,
        other=OTHER_REDIRECT,
        team=TEAM,
        bundle=BUNDLE,
        package=PACKAGE,
        cert=CERT,
    )
    environ = {"BASTION_MASTER_KEY": master_key_b64, "BASTION_DATABASE_URL": database_url}
    settings = load_settings(write_config(directory, text), environ)
    _prepare(settings)
    sink = MemorySink()
    decoder = None
    if google is not None:
        account = ServiceAccount.from_info(google.account.info(google.token_uri))
        decoder = PlayIntegrityApi(account, endpoint=google.url, timeout=5.0, clock=SystemClock())
    elif decoder_endpoint is not None:
        account = ServiceAccount.from_info(TestAccount().info(f"{decoder_endpoint}/token"))
        decoder = PlayIntegrityApi(
            account, endpoint=decoder_endpoint, timeout=2.0, clock=SystemClock()
        )

    @asynccontextmanager
    async def open_runtime() -> AsyncIterator[Runtime]:
        async with wiring.open_runtime(settings, audit_sinks=(sink,), decoder=decoder) as runtime:
            try:
                yield runtime
            finally:
                if decoder is not None:
                    await decoder.close()

    app = build_app(settings, open_runtime)
    with (
        serve_in_thread(app, port=port, lifespan="on") as url,
        httpx.Client(base_url=url, follow_redirects=False, timeout=30) as http,
    ):
        yield Served(url, http, settings, ca, play, sink)


@pytest.fixture
def served(tmp_path: Path, database_url: str, master_key_b64: str) -> Iterator[Served]:
    with serving(tmp_path, database_url, master_key_b64) as started:
        yield started


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One served Bastion on SQLite for the refusals, which leave nothing behind that
    another refusal could trip on."""
    from bastion.config import encode_master_key

    directory = tmp_path_factory.mktemp("attested")
    url = f"sqlite+aiosqlite:///{directory / 'bastion.db'}"
    with serving(directory, url, encode_master_key(b"m" * 32)) as started:
        yield started


def _code(served: Served, client_id: str, scope: str) -> str:
    """The browser part of the authorization code flow (RFC 6749 §4.1, PKCE, RFC 9207
    iss) for ``client_id``."""
    params = {
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": scope,
        "state": "st-1",
        "code_challenge": pkce.s256(VERIFIER),
        "code_challenge_method": "S256",
    }
    answer = served.http.get("/authorize", params=params)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    if location.startswith("/login?"):  # not yet signed in on this server
        location = sign_in(served.http, location, PASSWORD)  # type: ignore[arg-type]
    if location.startswith("/consent?"):
        location = approve(served.http, location)  # type: ignore[arg-type]
    assert location.startswith(REDIRECT), location
    returned = query_of(location)
    assert returned["iss"] == served.url
    return returned["code"]


def _redeem(served: Served, client_id: str, code: str, key: DeviceKey) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": client_id,
        "code_verifier": VERIFIER,
    }
    proof = key.proof("POST", f"{served.url}/token")
    return served.http.post("/token", data=form, headers={"DPoP": proof})


def _code_flow(served: Served, client_id: str, key: DeviceKey, scope: str) -> dict[str, Any]:
    """The whole code flow, its token request with a DPoP proof by ``key``."""
    tokens = _redeem(served, client_id, _code(served, client_id, scope), key)
    assert tokens.status_code == 200, tokens.text
    body: dict[str, Any] = tokens.json()
    return body


def _claims(token: str) -> dict[str, Any]:
    import json

    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return claims


def _linked_client(served: Served, jkt: str) -> str | None:
    async def read() -> str | None:
        database = wiring.open_database(served.settings)
        try:
            device = await SqlDeviceStore(database).by_jkt(jkt)
            return None if device is None else device.registered_client_id
        finally:
            await database.close()

    return asyncio.run(read())


def _assert_installation_client(served: Served, answer: httpx.Response, key: DeviceKey) -> str:
    assert answer.status_code == 201, answer.text
    body = answer.json()
    client_id: str = body["client_id"]
    assert client_id != "shop"
    # A public client: nothing secret ships in the app (RFC 7591 §3.2.1).
    assert body["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in body
    assert body["dpop_bound_access_tokens"] is True
    assert body["software_id"] == "shop"
    assert body["client_name"] == "Shop"
    assert body["redirect_uris"] == [REDIRECT, OTHER_REDIRECT]
    assert body["scope"] == "openid orders:read profile"
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["registration_client_uri"] == f"{served.url}/register/{client_id}"
    assert answer.headers["cache-control"] == "no-store"
    assert _linked_client(served, key.jkt) == client_id
    return client_id


# The installation registers, then completes a code flow with DPoP.


def test_an_app_attest_installation_gets_its_own_dpop_bound_client(served: Served) -> None:
    key = DeviceKey()
    answer = served.register(served.apple(key), key)
    client_id = _assert_installation_client(served, answer, key)
    assert answer.json()["software_version"] == "1.4.2"
    tokens = _code_flow(served, client_id, key, "openid orders:read")
    assert tokens["token_type"] == "DPoP"
    claims = _claims(tokens["access_token"])
    assert claims["client_id"] == client_id
    assert claims["cnf"] == {"jkt": key.jkt}
    created = served.events("oauth.registration.created")[-1]["details"]
    assert created["software_id"] == "shop"
    assert created["platform"] == "ios"


def test_a_play_integrity_installation_gets_its_own_dpop_bound_client(served: Served) -> None:
    key = DeviceKey()
    answer = served.register(served.google(key), key)
    client_id = _assert_installation_client(served, answer, key)
    tokens = _code_flow(served, client_id, key, "openid")
    assert _claims(tokens["access_token"])["cnf"] == {"jkt": key.jkt}


def test_the_installation_client_cannot_get_tokens_without_its_dpop_proof(shared: Served) -> None:
    """RFC 9449 §5.2: dpop_bound_access_tokens is forced on for an installation."""
    key = DeviceKey()
    client_id = shared.register(shared.apple(key), key).json()["client_id"]
    form = {
        "grant_type": "authorization_code",
        "code": "whatever",
        "redirect_uri": REDIRECT,
        "client_id": client_id,
        "code_verifier": VERIFIER,
    }
    answer = shared.http.post("/token", data=form)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_dpop_proof"


def test_only_the_installations_key_gets_its_tokens(shared: Served) -> None:
    """Without a secret, the installation's DPoP key is what tells it from anyone who
    read its client_id: a proof by another key is refused before the code is used."""
    key, other = DeviceKey(), DeviceKey()
    client_id = shared.register(shared.google(key), key).json()["client_id"]
    code = _code(shared, client_id, "openid")
    refused = _redeem(shared, client_id, code, other)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_client"
    assert _redeem(shared, client_id, code, key).status_code == 200


def test_a_revoked_installation_gets_no_more_tokens(shared: Served) -> None:
    key = DeviceKey()
    client_id = shared.register(shared.apple(key), key).json()["client_id"]
    tokens = _code_flow(shared, client_id, key, "openid")

    async def revoke() -> None:
        database = wiring.open_database(shared.settings)
        try:
            devices = SqlDeviceStore(database)
            device = await devices.by_jkt(key.jkt)
            assert device is not None
            await devices.revoke(device.device_id, time.time(), "test")
        finally:
            await database.close()

    asyncio.run(revoke())
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": client_id,
    }
    proof = key.proof("POST", f"{shared.url}/token")
    refused = shared.http.post("/token", data=form, headers={"DPoP": proof})
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_client"


def test_an_installation_may_ask_for_less_than_its_app(shared: Served) -> None:
    key = DeviceKey()
    body = shared.apple(
        key, redirect_uris=[REDIRECT], scope="openid", grant_types=["authorization_code"]
    )
    answer = shared.register(body, key)
    assert answer.status_code == 201, answer.text
    registered = answer.json()
    assert (registered["redirect_uris"], registered["scope"]) == ([REDIRECT], "openid")
    assert registered["grant_types"] == ["authorization_code"]


def test_rfc_7592_updates_can_narrow_never_widen(shared: Served) -> None:
    key = DeviceKey()
    registered = shared.register(shared.google(key), key).json()
    uri = f"/register/{registered['client_id']}"
    manage = {"authorization": f"Bearer {registered['registration_access_token']}"}
    read = shared.http.get(uri, headers=manage)
    assert read.status_code == 200
    assert read.json()["software_id"] == "shop"
    for wider in (
        {"redirect_uris": [REDIRECT, "com.example.evil:/cb"]},
        {"redirect_uris": [REDIRECT], "scope": "openid admin"},
        {"redirect_uris": [REDIRECT], "client_name": "Not the shop"},
        {"redirect_uris": [REDIRECT], "dpop_bound_access_tokens": False},
        {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic"},
    ):
        refused = shared.http.put(uri, headers=manage, json=wider)
        assert refused.status_code == 400, wider
        assert refused.json()["error"] == "invalid_client_metadata"
    narrowed = shared.http.put(
        uri, headers=manage, json={"redirect_uris": [REDIRECT], "scope": "openid"}
    )
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "openid"
    assert narrowed.json()["dpop_bound_access_tokens"] is True


def test_rfc_7592_updates_cannot_rebrand_an_installation(shared: Served) -> None:
    """The sign-in page shows an installation's client with its app's name and links:
    an update through the registration access token (RFC 7592 §2.2) can set none of
    them, whether the app has one or not (RFC 7591 §2: ``logo_uri``, ``client_uri``,
    ``policy_uri``, ``tos_uri``, ``client_name``)."""
    key = DeviceKey()
    registered = shared.register(shared.apple(key), key).json()
    uri = f"/register/{registered['client_id']}"
    manage = {"authorization": f"Bearer {registered['registration_access_token']}"}
    for branding in (
        {"logo_uri": "https://evil.example/logo.png"},
        {"client_uri": "https://evil.example/"},
        {"policy_uri": "https://evil.example/policy"},
        {"tos_uri": "https://evil.example/tos"},
        {"accent_color": "#ff0000"},
        {"client_name": "Shop (official)"},
    ):
        refused = shared.http.put(
            uri, headers=manage, json={"redirect_uris": [REDIRECT], **branding}
        )
        assert refused.status_code == 400, (branding, refused.text)
        assert refused.json()["error"] == "invalid_client_metadata"
    read = shared.http.get(uri, headers=manage).json()
    assert not {"logo_uri", "client_uri", "policy_uri", "tos_uri"} & set(read)


def test_an_installation_client_gets_challenges_and_asserts_as_its_app(shared: Served) -> None:
    """A per-installation client asks for a challenge with its own ``client_id``; it is
    its app's challenge, and an App Attest assertion over it by the installation's key
    is accepted (here on ``PUT /device/encryption-key``)."""
    key = DeviceKey()
    app = AppAttestDevice(shared.ca, f"{TEAM}.{BUNDLE}")
    registered = shared.register(shared.apple(key, attest=app), key).json()
    client_id = registered["client_id"]
    challenge = shared.challenge(client_id)
    jwk = {**DeviceKey().jwk(), "use": "enc"}
    content = orjson.dumps({"jwk": jwk})
    client_data = request_client_data("PUT", "/device/encryption-key", content, challenge)
    assertion = base64.b64encode(app.assertion(1, client_data)).decode()
    key_id = base64.b64encode(app.key_id).decode()
    header = f'key-id=:{key_id}:, assertion=:{assertion}:, challenge="{challenge}"'
    answer = shared.http.put(
        "/device/encryption-key",
        content=content,
        headers={
            "content-type": "application/json",
            "DPoP": key.proof("PUT", f"{shared.url}/device/encryption-key"),
            "Device-Assertion": header,
        },
    )
    assert answer.status_code == 200, answer.text
    event = shared.events("device.assertion")[-1]
    assert (event["outcome"], event["actor"]) == ("success", "client:shop")


def test_an_installation_client_passes_a_route_requiring_assertions(served: Served) -> None:
    """At the gateway the installation's token (its own ``client_id``, bound to its
    DPoP key) carries an assertion over a challenge it asked for with that client id:
    the assertion is judged as its app's and accepted."""
    key = DeviceKey()
    app = AppAttestDevice(served.ca, f"{TEAM}.{BUNDLE}")
    client_id = served.register(served.apple(key, attest=app), key).json()["client_id"]
    token = _code_flow(served, client_id, key, "openid")["access_token"]
    challenge = served.challenge(client_id)
    body = b"{}"
    client_data = request_client_data("POST", "/api/pay", body, challenge)
    assertion = base64.b64encode(app.assertion(1, client_data)).decode()
    key_id = base64.b64encode(app.key_id).decode()
    header = f'key-id=:{key_id}:, assertion=:{assertion}:, challenge="{challenge}"'
    answer = served.http.post(
        "/api/pay",
        content=body,
        headers={
            "authorization": f"DPoP {token}",
            "DPoP": key.proof("POST", f"{served.url}/api/pay", access_token=token),
            "content-type": "application/json",
            "Device-Assertion": header,
        },
    )
    # Past the assertion and risk steps; the upstream is not there.
    assert answer.status_code not in (401, 403), answer.text
    (event,) = served.events("device.assertion")
    assert (event["outcome"], event["actor"]) == ("success", "client:shop")
    assert event["details"]["reason"] == "verified"


def test_a_client_that_is_neither_an_app_nor_an_installation_gets_no_challenge(
    shared: Served,
) -> None:
    answer = shared.http.post("/device/challenge", json={"client_id": "web"})
    assert answer.status_code == 400


def test_two_registrations_racing_with_one_dpop_key_make_one_client(shared: Served) -> None:
    """Registrations of one installation (one DPoP key, each with its own challenge)
    sent at once: exactly one client is made; the others are refused and leave no
    client behind."""
    key = DeviceKey()
    bodies = [shared.apple(key) for _ in range(RACERS)]

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=shared.url, timeout=30) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.post(
                            "/register",
                            json=body,
                            headers={"DPoP": key.proof("POST", shared.register_uri)},
                        )
                        for body in bodies
                    )
                )
            )

    answers = asyncio.run(race())
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [400] * (RACERS - 1), [a.text for a in answers]
    (won,) = [a.json() for a in answers if a.status_code == 201]
    assert _linked_client(shared, key.jkt) == won["client_id"]
    for lost in (a.json() for a in answers if a.status_code == 400):
        assert lost["error"] == "unapproved_software_statement"


# Refusals.


def test_no_attestation_and_no_initial_access_token_is_refused(shared: Served) -> None:
    answer = shared.register({"software_id": "shop", "redirect_uris": [REDIRECT]}, DeviceKey())
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_token"


def _refused(served: Served, answer: httpx.Response, error: str, reason: str | None = None) -> None:
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == error
    if reason is not None:
        assert served.events("oauth.registration.refused")[-1]["details"]["reason"] == reason


def test_an_attestation_for_another_bundle_is_refused(shared: Served) -> None:
    """A repackaged app: a genuine device, a key made for another App ID."""
    key = DeviceKey()
    clone = AppAttestDevice(shared.ca, f"{TEAM}.com.example.clone")
    _refused(
        shared,
        shared.register(shared.apple(key, attest=clone), key),
        "unapproved_software_statement",
        "wrong_app",
    )


def test_a_play_integrity_verdict_for_another_package_is_refused(shared: Served) -> None:
    key = DeviceKey()
    body = shared.google(key, package="com.example.clone")
    _refused(shared, shared.register(body, key), "unapproved_software_statement", "wrong_package")


def test_a_replayed_registration_is_refused(shared: Served) -> None:
    """A registration captured and sent again by another key: its challenge is used up
    (and its attestation names the first key)."""
    key, thief = DeviceKey(), DeviceKey()
    body = shared.apple(key)
    assert shared.register(body, key).status_code == 201
    _refused(
        shared, shared.register(body, thief), "unapproved_software_statement", "challenge_invalid"
    )


def test_a_challenge_issued_for_another_client_is_refused(shared: Served) -> None:
    key = DeviceKey()
    body = shared.apple(key, challenge=shared.challenge("ios-only"))
    _refused(
        shared, shared.register(body, key), "unapproved_software_statement", "challenge_invalid"
    )


def test_an_app_attest_key_registered_twice_is_refused(shared: Served) -> None:
    """One App Attest key, one installation: a second registration with it (another
    DPoP key, a fresh challenge) is a copy of the first installation."""
    first, second = DeviceKey(), DeviceKey()
    attest = AppAttestDevice(shared.ca, f"{TEAM}.{BUNDLE}")
    assert shared.register(shared.apple(first, attest=attest), first).status_code == 201
    answer = shared.register(shared.apple(second, attest=attest), second)
    _refused(shared, answer, "unapproved_software_statement", "key_reused")


@pytest.mark.parametrize("platform", ["apple", "google"])
def test_an_installation_registers_once(shared: Served, platform: str) -> None:
    """The same DPoP key again, with a fresh attestation: the installation already has
    its client."""
    key = DeviceKey()
    build = shared.apple if platform == "apple" else shared.google
    assert shared.register(build(key), key).status_code == 201
    answer = shared.register(build(key), key)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "unapproved_software_statement"


def test_the_attestation_must_name_the_key_that_signs_the_proof(shared: Served) -> None:
    """The attestation is over challenge.jkt of one key; the proof is another key's."""
    made_for, signer = DeviceKey(), DeviceKey()
    body = shared.apple(made_for)
    _refused(
        shared, shared.register(body, signer), "unapproved_software_statement", "nonce_mismatch"
    )


def test_without_a_dpop_proof_registration_is_refused(shared: Served) -> None:
    answer = shared.register(shared.apple(DeviceKey()), None)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_dpop_proof"


@pytest.mark.parametrize(
    ("software_id", "platform"),
    [("nope", "apple"), ("web", "apple"), ("web", "google"), ("ios-only", "google"), ("", "apple")],
    ids=[
        "unknown",
        "no-device-declaration",
        "no-device-declaration-google",
        "other-platform",
        "empty",
    ],
)
def test_software_id_must_name_a_declared_app(
    shared: Served, software_id: str, platform: str
) -> None:
    key = DeviceKey()
    challenge = shared.challenge("shop")
    build = shared.apple if platform == "apple" else shared.google
    body = build(key, challenge=challenge)
    body["software_id"] = software_id
    _refused(shared, shared.register(body, key), "invalid_client_metadata")
    # Refused before anything was used up: the challenge still serves.
    body["software_id"] = "shop"
    assert shared.register(body, key).status_code == 201


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"scope": "openid admin"}, "invalid_client_metadata"),
        ({"redirect_uris": ["com.example.evil:/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": [REDIRECT, "https://evil.example/cb"]}, "invalid_redirect_uri"),
        ({"grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        ({"grant_types": ["refresh_token"]}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "invalid_client_metadata"),
        ({"jwks": {"keys": []}}, "invalid_client_metadata"),
        ({"dpop_bound_access_tokens": False}, "invalid_client_metadata"),
        ({"software_version": "1.0; drop"}, "invalid_client_metadata"),
    ],
    ids=[
        "scope",
        "redirect",
        "one-more-redirect",
        "client-credentials",
        "no-code-flow",
        "secret",
        "jwks",
        "dpop-off",
        "version",
    ],
)
def test_nothing_wider_than_the_app_client(
    shared: Served, metadata: dict[str, Any], error: str
) -> None:
    key = DeviceKey()
    _refused(shared, shared.register(shared.apple(key, **metadata), key), error)


@pytest.mark.parametrize(
    "attestation",
    [
        "a string",
        {"platform": "windows", "challenge": "c"},
        {"platform": "apple", "challenge": "c", "key_id": "k"},
        {"platform": "apple", "challenge": "c", "key_id": "A" * 43, "attestation_object": "!!"},
        {"platform": "google", "challenge": "c", "integrity_token": "t", "extra": 1},
        {"platform": "google", "challenge": "c" * 65, "integrity_token": "t"},
    ],
    ids=["not-object", "platform", "missing", "not-base64", "extra-member", "long-challenge"],
)
def test_a_malformed_attestation_is_invalid_metadata(shared: Served, attestation: Any) -> None:
    key = DeviceKey()
    body = {"software_id": "shop", "device_attestation": attestation}
    _refused(shared, shared.register(body, key), "invalid_client_metadata")


# Off by default; fails closed when the attestation cannot be judged.


def test_without_the_setting_an_attestation_is_no_credential(
    tmp_path: Path, master_key_b64: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bastion.db'}"
    with serving(tmp_path, url, master_key_b64, attested=False) as served:
        key = DeviceKey()
        answer = served.register(served.apple(key), key)
        assert answer.status_code == 401
        assert answer.json()["error"] == "invalid_token"


def test_an_attestation_that_cannot_be_judged_fails_closed_with_503(
    tmp_path: Path, master_key_b64: str
) -> None:
    """A Standard request's token while Google's API cannot be reached: not a refusal, no
    500, and no client; registration has no weaker answer to fall back to."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bastion.db'}"
    closed = f"http://127.0.0.1:{free_port()}"
    with serving(tmp_path, url, master_key_b64, decoder_endpoint=closed) as served:
        key = DeviceKey()
        challenge = served.challenge("standard")
        body = {
            "software_id": "standard",
            "device_attestation": {
                "platform": "google",
                "integrity_token": "standard-token-" + "x" * 100,
                "challenge": challenge,
            },
        }
        answer = served.register(body, key)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "temporarily_unavailable"
        assert answer.headers["retry-after"] == "30"
        assert served.events("oauth.registration.unavailable")
        assert not served.events("oauth.registration.created")


def test_a_standard_request_decoded_by_google_registers_an_installation(
    tmp_path: Path, master_key_b64: str
) -> None:
    """The Play Integrity Standard API end to end: the app's token goes to (a local fake
    of) Google's decodeIntegrityToken with Bastion's service account, and the verdict's
    requestHash binds it to the challenge and the DPoP key."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bastion.db'}"
    fake = FakeGooglePlay(TestAccount(), SystemClock())
    with (
        serving_in_thread(fake) as google,
        serving(tmp_path, url, master_key_b64, google=google) as served,
    ):
        key = DeviceKey()
        challenge = served.challenge("standard")
        bound = request_hash(attestation_client_data(challenge, key.jkt))
        payload = verdict(
            now=time.time(), request_hash=bound, package="com.example.standard", digest=CERT
        )
        google.register("standard-token-" + "s" * 100, "com.example.standard", payload)
        body = {
            "software_id": "standard",
            "device_attestation": {
                "platform": "google",
                "integrity_token": "standard-token-" + "s" * 100,
                "challenge": challenge,
            },
        }
        answer = served.register(body, key)
        assert answer.status_code == 201, answer.text
        assert answer.json()["redirect_uris"] == ["com.example.standard:/cb"]
        assert (google.token_fetches, google.decode_calls) == (1, 1)
