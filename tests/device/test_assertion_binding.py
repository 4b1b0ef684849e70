"""Whose assertion, and when one is asked for, on a real socket: at a gateway route with
``require_assertion`` and at ``/token`` under ``[device.token] require_assertion``.

- The assertion must be made by the device the caller's DPoP key is bound to (the
  token's ``cnf.jkt``, RFC 9449 §6.1, at the gateway; the proof's key, §4.3, at
  ``/token``): a script with its own unattested key cannot borrow an assertion made by
  a genuine installation, and a bearer token (no key) is refused with a reason that says
  so.
- ``mode = "audit"`` decides and records, enforces nothing: a missing assertion is an
  audit event (``decided`` ``refused``) and the request goes on.
- A request outside the policy's cohort is not asked for an assertion.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bastion.oauth.clients import hash_secret
from tests.device.test_end_to_end import EXTRA, FORM, SECRET, App
from tests.device.test_endpoints import Served, served
from tests.support.recorder import Recorder
from tests.support.upstream import serve_in_thread

BEARER = """
[[oauth.clients]]
client_id = "pay-bearer"
type = "confidential"
grant_types = ["client_credentials"]
scopes = ["pay"]
secret_sha256 = "{secret}"
[oauth.clients.device.apple]
team_id = "ABCDE12345"
bundle_ids = ["com.example.app"]
[[gateway.routes]]
methods = ["POST"]
path = "/watched"
upstream = "api"
auth = "bastion"
device = {{ require_assertion = true, mode = "audit" }}
[[gateway.routes]]
methods = ["POST"]
path = "/beta"
upstream = "api"
auth = "bastion"
device = {{ require_assertion = true, cohort = "beta" }}
"""
COHORT = '[device.cohorts.beta]\nclients = ["someone-else"]'
BODY = b'{"amount": 10}'


@pytest.fixture
def recorder_url(recorder: Recorder) -> Iterator[str]:
    with serve_in_thread(recorder) as url:
        yield url


def _extra(url: str) -> str:
    secret = hash_secret(SECRET)
    return EXTRA.format(secret=secret, url=url) + BEARER.format(secret=secret)


def _reasons(server: Served) -> list[str]:
    return [e["details"]["reason"] for e in server.events("device.assertion")]


def _bearer_token(server: Served, assertion: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if assertion is not None:
        headers["Device-Assertion"] = assertion
    return server.http.post("/token", content=FORM, headers=headers, auth=("pay-bearer", SECRET))


def test_a_gateway_assertion_must_be_the_token_keys_device(
    tmp_path: Path, environ: dict[str, str], recorder_url: str
) -> None:
    with served(tmp_path, environ, device=COHORT, extra=_extra(recorder_url)) as server:
        genuine = App(server)
        genuine.attest()
        # A script: its own DPoP key, never attested, and a token bound to it.
        script = App(server)
        token = script.token(None).json()["access_token"]
        borrowed = genuine.assertion("POST", "/api/pay", BODY)
        answer = script.call("/api/pay", token, BODY, borrowed)
        assert answer.status_code == 403, answer.text
        assert answer.json()["type"] == "urn:bastion:problem:device-refused"
        assert _reasons(server)[-1] == "unknown_device"


def test_a_bearer_token_is_refused_on_a_route_requiring_assertions(
    tmp_path: Path, environ: dict[str, str], recorder_url: str
) -> None:
    with served(tmp_path, environ, device=COHORT, extra=_extra(recorder_url)) as server:
        genuine = App(server)
        genuine.attest()
        issued = _bearer_token(server)
        assert issued.json()["token_type"] == "Bearer"
        token = issued.json()["access_token"]
        answer = server.http.post(
            "/api/pay",
            content=BODY,
            headers={
                "authorization": f"Bearer {token}",
                "content-type": "application/json",
                "Device-Assertion": genuine.assertion("POST", "/api/pay", BODY),
            },
        )
        assert answer.status_code == 403, answer.text
        assert "DPoP" in answer.json()["detail"]
        (event,) = [e for e in server.events("device.assertion") if e["outcome"] == "denied"]
        assert event["details"]["reason"] == "not_dpop_bound"


def test_at_token_the_assertion_must_be_the_proof_keys_device(
    tmp_path: Path, environ: dict[str, str], recorder_url: str
) -> None:
    device = "[device.token]\nrequire_assertion = true\n" + COHORT
    with served(tmp_path, environ, device=device, extra=_extra(recorder_url)) as server:
        genuine = App(server)
        genuine.attest()
        script = App(server)
        borrowed = script.token(genuine.assertion("POST", "/token", FORM))
        assert borrowed.status_code == 400, borrowed.text
        assert borrowed.json()["error"] == "invalid_request"
        assert _reasons(server)[-1] == "unknown_device"
        # Without a DPoP proof there is no key to name a device at all.
        bearer = _bearer_token(server, genuine.assertion("POST", "/token", FORM))
        assert bearer.status_code == 400
        assert "DPoP" in bearer.json()["error_description"]
        assert _reasons(server)[-1] == "not_dpop_bound"
        # The genuine installation, with its own key, gets its token.
        assert genuine.token(genuine.assertion("POST", "/token", FORM)).status_code == 200


def test_an_audit_mode_route_records_a_missing_assertion_and_lets_it_through(
    tmp_path: Path, environ: dict[str, str], recorder_url: str
) -> None:
    with served(tmp_path, environ, device=COHORT, extra=_extra(recorder_url)) as server:
        app = App(server)
        app.attest()
        token = app.token(None).json()["access_token"]
        answer = app.call("/api/watched", token, BODY, None)
        assert answer.status_code == 200, answer.text
        (event,) = server.events("device.assertion")
        assert event["outcome"] == "success"
        details = event["details"]
        assert (details["reason"], details["decided"], details["mode"]) == (
            "assertion_missing",
            "refused",
            "audit",
        )
        # The risk step judged the request as usual (audit mode: recorded, not enforced).
        (judged,) = server.events("device.risk")
        assert judged["details"]["mode"] == "audit"


def test_outside_the_cohort_no_assertion_is_asked_for(
    tmp_path: Path, environ: dict[str, str], recorder_url: str
) -> None:
    with served(tmp_path, environ, device=COHORT, extra=_extra(recorder_url)) as server:
        app = App(server)
        app.attest()
        token = app.token(None).json()["access_token"]
        answer = app.call("/api/beta", token, BODY, None)
        assert answer.status_code == 200, answer.text
        assert server.events("device.assertion") == []


@pytest.mark.parametrize(
    "policy", ['mode = "audit"', 'cohort = "beta"'], ids=["audit", "outside-cohort"]
)
def test_at_token_audit_mode_and_cohorts_ask_nothing_of_the_request(
    tmp_path: Path, environ: dict[str, str], recorder_url: str, policy: str
) -> None:
    device = f"[device.token]\nrequire_assertion = true\n{policy}\n{COHORT}"
    with served(tmp_path, environ, device=device, extra=_extra(recorder_url)) as server:
        app = App(server)
        app.attest()
        answer = app.token(None)
        assert answer.status_code == 200, answer.text
        events = server.events("device.assertion")
        if policy.startswith("mode"):
            (event,) = events
            assert (event["outcome"], event["details"]["decided"]) == ("success", "refused")
        else:
            assert events == []
