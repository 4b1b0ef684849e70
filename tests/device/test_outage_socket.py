"""Google down while a gateway route requires a device assertion, on a real socket, with
the local fake of Google's Play Integrity API (``decodeIntegrityToken``) answering 503
``UNAVAILABLE`` or 429 ``RESOURCE_EXHAUSTED`` (the daily quota, which an attacker can
spend with free challenges).

An assertion that cannot be decoded is neither a refusal nor a pass on the device's
last good standing: the assertion step records the outage and the risk step judges the
request with ``attestation_unavailable``, so the route's ``outage`` fallback applies
(docs/device-trust.md, "When attestation is down"): ``step_up`` (the default) answers
the RFC 9470 challenge, ``deny`` answers 503, ``allow`` lets the request through."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion import wiring
from bastion.audit.sinks import MemorySink
from bastion.clock import SystemClock
from bastion.device.binding import attestation_client_data, request_client_data, request_hash
from bastion.device.google_api import PlayIntegrityApi, ServiceAccount
from bastion.oauth.clients import hash_secret
from bastion.runtime import Runtime
from bastion.web.app import build_app
from tests.device.conftest import device_settings
from tests.support import schema
from tests.support.dpop import DeviceKey
from tests.support.google_play import (
    Answer,
    FakeGooglePlay,
    TestAccount,
    google_error,
    serving_in_thread,
)
from tests.support.play_integrity import CERT_DIGEST, PACKAGE, ConsoleKeys, verdict
from tests.support.upstream import serve_in_thread

ISSUER = "http://127.0.0.1:8000"
SECRET = "backend-secret-0123456789abcdefghijklmnopqrstuv"
FORM = b"grant_type=client_credentials&scope=pay"
EXTRA = """
[[oauth.clients]]
client_id = "pay-android"
type = "confidential"
grant_types = ["client_credentials"]
scopes = ["pay"]
secret_sha256 = "{secret}"
dpop_bound_access_tokens = true
[oauth.clients.device.android]
package_name = "{package}"
certificate_digests = ["{digest}"]
[[gateway.upstreams]]
name = "api"
url = "{url}"
credential = {{ type = "none" }}
[[gateway.routes]]
methods = ["POST"]
path = "/step-up"
upstream = "api"
auth = "bastion"
device = {{ require_assertion = true }}
[[gateway.routes]]
methods = ["POST"]
path = "/deny"
upstream = "api"
auth = "bastion"
device = {{ require_assertion = true, outage = "deny" }}
[[gateway.routes]]
methods = ["POST"]
path = "/allow"
upstream = "api"
auth = "bastion"
device = {{ require_assertion = true, outage = "allow" }}
"""


@dataclass
class Served:
    http: httpx.Client
    google: FakeGooglePlay
    audit: MemorySink

    def events(self, action: str) -> list[dict[str, Any]]:
        return [r for r in self.audit.records if r["action"] == action]

    def challenge(self) -> str:
        answer = self.http.post("/device/challenge", json={"client_id": "pay-android"})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["challenge"])


@contextmanager
def served(tmp_path: Path, environ: dict[str, str], upstream: str) -> Iterator[Served]:
    fake = FakeGooglePlay(TestAccount(), SystemClock())
    sink = MemorySink()
    extra = EXTRA.format(
        secret=hash_secret(SECRET), package=PACKAGE, digest=CERT_DIGEST, url=upstream
    )
    settings = device_settings(tmp_path, environ, ConsoleKeys(), extra=extra)
    asyncio.run(schema.migrate(settings))
    with serving_in_thread(fake) as google:
        account = ServiceAccount.from_info(google.account.info(google.token_uri))
        decoder = PlayIntegrityApi(account, endpoint=google.url, timeout=5.0, clock=SystemClock())

        @asynccontextmanager
        async def open_runtime() -> AsyncIterator[Runtime]:
            runtime = wiring.open_runtime(
                settings, environ=environ, audit_sinks=(sink,), decoder=decoder
            )
            async with runtime as opened:
                try:
                    yield opened
                finally:
                    await decoder.close()

        app = build_app(settings, open_runtime)
        with serve_in_thread(app, lifespan="on") as url, httpx.Client(base_url=url) as http:
            yield Served(http, google, sink)


@pytest.fixture
def upstream(recorder: Any) -> Iterator[str]:
    with serve_in_thread(recorder) as url:
        yield url


def attested_token(server: Served, key: DeviceKey) -> str:
    """Attest the app through Google's decoder (a good verdict), then get a DPoP-bound
    access token for its key."""
    challenge = server.challenge()
    token = "attest-" + "a" * 60
    bound = request_hash(attestation_client_data(challenge, key.jkt))
    server.google.register(token, PACKAGE, verdict(now=time.time(), request_hash=bound))
    attested = server.http.post(
        "/device/attest/google",
        json={"client_id": "pay-android", "integrity_token": token, "challenge": challenge},
        headers={"DPoP": key.proof("POST", f"{ISSUER}/device/attest/google")},
    )
    assert attested.status_code == 201, attested.text
    issued = server.http.post(
        "/token",
        content=FORM,
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "DPoP": key.proof("POST", f"{ISSUER}/token"),
        },
        auth=("pay-android", SECRET),
    )
    assert issued.status_code == 200, issued.text
    return str(issued.json()["access_token"])


def call(server: Served, key: DeviceKey, access: str, path: str) -> httpx.Response:
    """A request whose assertion is a Play Integrity token Google would decode to a good
    verdict bound to this very request, if Google answered."""
    body = b"{}"
    challenge = server.challenge()
    signed = request_hash(request_client_data("POST", path, body, challenge))
    token = f"assert-{challenge}"
    server.google.register(token, PACKAGE, verdict(now=time.time(), request_hash=signed))
    return server.http.post(
        path,
        content=body,
        headers={
            "authorization": f"DPoP {access}",
            "DPoP": key.proof("POST", f"{ISSUER}{path}", access_token=access),
            "Device-Assertion": f'integrity="{token}", challenge="{challenge}"',
            "content-type": "application/json",
        },
    )


@pytest.mark.parametrize(
    "down",
    [google_error(503, "UNAVAILABLE"), google_error(429, "RESOURCE_EXHAUSTED")],
    ids=["503", "429-quota"],
)
def test_google_down_applies_the_routes_outage_fallback(
    tmp_path: Path, environ: dict[str, str], upstream: str, recorder: Any, down: Answer
) -> None:
    with served(tmp_path, environ, upstream) as server:
        key = DeviceKey()
        access = attested_token(server, key)
        # Google up: the assertion verifies and the route passes.
        assert call(server, key, access, "/api/step-up").status_code == 200

        for _ in range(3):
            server.google.decode_answers.append(down)
        stepped = call(server, key, access, "/api/step-up")
        # Not the device's last good standing (200), not a 500: the RFC 9470 challenge.
        assert stepped.status_code == 401, stepped.text
        assert "insufficient_user_authentication" in stepped.headers["www-authenticate"]
        denied = call(server, key, access, "/api/deny")
        assert denied.status_code == 503, denied.text
        assert denied.json()["type"] == "urn:bastion:problem:device-unverifiable"
        allowed = call(server, key, access, "/api/allow")
        assert allowed.status_code == 200, allowed.text
        assert len(recorder.seen) == 2

        judged = [e["details"] for e in server.events("device.risk")]
        assert [j["signals"]["attestation_unavailable"] for j in judged] == [False, True, True]
        assert [j["enforced"] for j in judged] == ["allow", "step_up", "allow"]
        assert judged[1]["reasons"][-1] == "attestation_unavailable"
        # Judged with the last known record, which the outage does not wipe.
        assert judged[1]["signals"]["attestation"] == "device"
