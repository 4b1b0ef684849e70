"""From attestation to a protected gateway call, on a real socket and on both store pairs:
challenge → App Attest attestation binding the DPoP key → a DPoP-bound token whose
request carries an assertion (``[device.token] require_assertion``) → a gateway route
whose ``device`` policy requires an assertion over each request. The attacks fail: no
assertion, another body, a replayed header, another installation's key."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bastion.device.binding import attestation_client_data, request_client_data, request_hash
from bastion.oauth.clients import hash_secret
from tests.device.conftest import APP_ID, CA
from tests.device.test_endpoints import ISSUER, Served, served
from tests.support.app_attest import AppAttestDevice
from tests.support.dpop import DeviceKey
from tests.support.play_integrity import CERT_DIGEST, verdict
from tests.support.recorder import Recorder
from tests.support.upstream import serve_in_thread

SECRET = "backend-secret-0123456789abcdefghijklmnopqrstuv"
FORM = b"grant_type=client_credentials&scope=pay"
EXTRA = """
[[oauth.clients]]
client_id = "pay-app"
type = "confidential"
grant_types = ["client_credentials"]
scopes = ["pay"]
secret_sha256 = "{secret}"
dpop_bound_access_tokens = true
[oauth.clients.device.apple]
team_id = "ABCDE12345"
bundle_ids = ["com.example.app"]
[[gateway.upstreams]]
name = "api"
url = "{url}"
credential = {{ type = "none" }}
[[gateway.routes]]
methods = ["POST"]
path = "/pay"
upstream = "api"
auth = "bastion"
device = {{ require_assertion = true }}
[[gateway.routes]]
methods = ["POST"]
path = "/open"
upstream = "api"
auth = "bastion"
"""


class App:
    """The iOS app: its DPoP key, its App Attest key and its counter."""

    def __init__(self, server: Served) -> None:
        self.server = server
        self.key = DeviceKey()
        self.attest_key = AppAttestDevice(CA, APP_ID)
        self.counter = 0

    def attest(self) -> None:
        answer = self.server.attest_apple(self.key, self.attest_key, client_id="pay-app")
        assert answer.status_code == 201, answer.text

    def assertion(self, method: str, target: str, body: bytes) -> str:
        challenge = self.server.challenge("pay-app")
        self.counter += 1
        signed = self.attest_key.assertion(
            self.counter, request_client_data(method, target, body, challenge)
        )
        key_id = base64.b64encode(self.attest_key.key_id).decode()
        encoded = base64.b64encode(signed).decode()
        return f'key-id=:{key_id}:, assertion=:{encoded}:, challenge="{challenge}"'

    def token(self, assertion: str | None) -> httpx.Response:
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "DPoP": self.key.proof("POST", f"{ISSUER}/token"),
        }
        if assertion is not None:
            headers["Device-Assertion"] = assertion
        return self.server.http.post(
            "/token", content=FORM, headers=headers, auth=("pay-app", SECRET)
        )

    def call(self, path: str, token: str, body: bytes, assertion: str | None) -> httpx.Response:
        headers = {
            "authorization": f"DPoP {token}",
            "DPoP": self.key.proof("POST", f"{ISSUER}{path}", access_token=token),
            "content-type": "application/json",
        }
        if assertion is not None:
            headers["Device-Assertion"] = assertion
        return self.server.http.post(path, content=body, headers=headers)


@pytest.fixture
def recorder_url(recorder: Recorder) -> Iterator[str]:
    with serve_in_thread(recorder) as url:
        yield url


def test_attested_app_to_protected_route(
    tmp_path: Path, store_environ: dict[str, str], recorder: Recorder, recorder_url: str
) -> None:
    extra = EXTRA.format(secret=hash_secret(SECRET), url=recorder_url)
    device = "[device.token]\nrequire_assertion = true"
    with served(tmp_path, store_environ, device=device, extra=extra) as server:
        app = App(server)
        app.attest()

        # The token endpoint: an assertion over this very request is required.
        missing = app.token(None)
        assert missing.status_code == 400
        assert missing.json()["error"] == "invalid_request"
        other_body = app.assertion("POST", "/token", b"grant_type=client_credentials")
        assert app.token(other_body).status_code == 400
        issued = app.token(app.assertion("POST", "/token", FORM))
        assert issued.status_code == 200, issued.text
        assert issued.json()["token_type"] == "DPoP"
        token = issued.json()["access_token"]

        # The gateway route: each request carries an assertion over itself.
        body = b'{"amount": 10}'
        header = app.assertion("POST", "/api/pay", body)
        answer = app.call("/api/pay", token, body, header)
        assert answer.status_code == 200, answer.text
        # The header is the gateway's: the upstream never sees it.
        assert "device-assertion" not in recorder.last.headers
        assert recorder.last.body == body

        replayed = app.call("/api/pay", token, body, header)
        assert replayed.status_code == 403
        assert replayed.json()["type"] == "urn:bastion:problem:device-refused"
        tampered = app.call(
            "/api/pay", token, b'{"amount": 10000}', app.assertion("POST", "/api/pay", body)
        )
        assert tampered.status_code == 403
        assert app.call("/api/pay", token, body, None).status_code == 403
        # A route that asks for nothing is not touched by the step.
        assert app.call("/api/open", token, body, None).status_code == 200

        # Another attested installation of the same app cannot sign for this one.
        other = App(server)
        other.attest()
        stolen = app.call("/api/pay", token, body, other.assertion("POST", "/api/pay", body))
        assert stolen.status_code == 403

        # A public route has no client whose app could be held to account: a device
        # table on one is refused when the configuration is read (test_risk_settings).
        reasons = [e["details"]["reason"] for e in server.events("device.assertion")]
        assert reasons == [
            "assertion_missing",
            "signature_invalid",
            "verified",
            "verified",
            "challenge_invalid",
            "signature_invalid",
            "assertion_missing",
            "wrong_device",
        ]
        assert len(recorder.seen) == 2


OUTAGE_EXTRA = """
[[oauth.clients]]
client_id = "pay-android"
type = "confidential"
grant_types = ["client_credentials"]
scopes = ["pay"]
secret_sha256 = "{secret}"
dpop_bound_access_tokens = true
[oauth.clients.device.android]
package_name = "com.example.app"
certificate_digests = ["{digest}"]
[[gateway.upstreams]]
name = "api"
url = "{url}"
credential = {{ type = "none" }}
[[gateway.routes]]
methods = ["POST"]
path = "/strict"
upstream = "api"
auth = "bastion"
device = {{ require_assertion = true, outage = "deny" }}
[[gateway.routes]]
methods = ["POST"]
path = "/lenient"
upstream = "api"
auth = "bastion"
device = {{ require_assertion = true }}
"""


def test_google_down_at_the_gateway_follows_the_routes_outage_fallback(
    tmp_path: Path, environ: dict[str, str], recorder_url: str
) -> None:
    """An assertion that cannot be judged is not a refusal of the device: a route whose
    fallback is "deny" answers 503; any other leaves the answer to the route's risk
    policy (the step marks the request as an outage), never a 500."""
    extra = OUTAGE_EXTRA.format(secret=hash_secret(SECRET), url=recorder_url, digest=CERT_DIGEST)
    with served(tmp_path, environ, extra=extra) as server:
        key = DeviceKey()
        challenge = server.challenge("pay-android")
        bound = request_hash(attestation_client_data(challenge, key.jkt))
        token = server.decoder.issue(verdict(now=time.time(), request_hash=bound))
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
        access = issued.json()["access_token"]
        server.decoder.down = True

        def call(path: str) -> httpx.Response:
            body = b"{}"
            challenge = server.challenge("pay-android")
            signed = request_hash(request_client_data("POST", path, body, challenge))
            return server.http.post(
                path,
                content=body,
                headers={
                    "authorization": f"DPoP {access}",
                    "DPoP": key.proof("POST", f"{ISSUER}{path}", access_token=access),
                    "Device-Assertion": f'integrity="{token}-{signed}", challenge="{challenge}"',
                    "content-type": "application/json",
                },
            )

        strict = call("/api/strict")
        assert strict.status_code == 503
        assert strict.json()["type"] == "urn:bastion:problem:device-unverifiable"
        lenient = call("/api/lenient")
        assert lenient.status_code not in (403, 500, 503)
        # The risk step judges the outage: the policy's fallback (step-up by default)
        # with the device's last known record (RFC 9470 challenge).
        assert lenient.status_code == 401, lenient.text
        assert "insufficient_user_authentication" in lenient.headers["www-authenticate"]
        (judged,) = server.events("device.risk")
        assert judged["details"]["reasons"][-1] == "attestation_unavailable"
        assert judged["details"]["signals"]["attestation"] == "device"  # the last verdict
        reasons = [e["details"]["reason"] for e in server.events("device.assertion")]
        assert reasons == ["decoder_unavailable", "decoder_unavailable"]


@pytest.mark.parametrize(("outage", "status"), [("deny", 503), ("step_up", 503), ("allow", 200)])
def test_google_down_at_the_token_endpoint(
    tmp_path: Path, environ: dict[str, str], recorder_url: str, outage: str, status: int
) -> None:
    """Only a token policy whose outage fallback is "allow" issues tokens while the
    assertion cannot be judged; otherwise 503 temporarily_unavailable, never 500."""
    extra = OUTAGE_EXTRA.format(secret=hash_secret(SECRET), url=recorder_url, digest=CERT_DIGEST)
    device = f'[device.token]\nrequire_assertion = true\noutage = "{outage}"'
    with served(tmp_path, environ, device=device, extra=extra) as server:
        key = DeviceKey()
        challenge = server.challenge("pay-android")
        bound = request_hash(attestation_client_data(challenge, key.jkt))
        attested = server.http.post(
            "/device/attest/google",
            json={
                "client_id": "pay-android",
                "integrity_token": server.decoder.issue(
                    verdict(now=time.time(), request_hash=bound)
                ),
                "challenge": challenge,
            },
            headers={"DPoP": key.proof("POST", f"{ISSUER}/device/attest/google")},
        )
        assert attested.status_code == 201, attested.text
        server.decoder.down = True
        challenge = server.challenge("pay-android")
        assertion = f'integrity="{"t" * 40}", challenge="{challenge}"'
        answer = server.http.post(
            "/token",
            content=FORM,
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "DPoP": key.proof("POST", f"{ISSUER}/token"),
                "Device-Assertion": assertion,
            },
            auth=("pay-android", SECRET),
        )
        assert answer.status_code == status, answer.text
        if status == 503:
            assert answer.json()["error"] == "temporarily_unavailable"


def test_a_refresh_policy_leaves_other_grants_alone(
    tmp_path: Path, environ: dict[str, str], recorder_url: str
) -> None:
    extra = EXTRA.format(secret=hash_secret(SECRET), url=recorder_url)
    device = "[device.refresh]\nrequire_assertion = true"
    with served(tmp_path, environ, device=device, extra=extra) as server:
        app = App(server)
        app.attest()
        assert app.token(None).status_code == 200
