"""The demo app's own rules, without Bastion: what it accepts at its redirect URI
(RFC 6749 §10.12 state, RFC 9207 iss), which requests it serves, and that its page never
shows a token's value."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from starlette.testclient import TestClient

from bastion.demo.actions import Scenario
from bastion.demo.app import AppSettings, demo_app
from bastion.demo.client import Exchange, Tokens, masked
from bastion.demo.pages import PageFacts, render
from bastion.demo.sessions import COOKIE, Answer, Session
from bastion.demo.tokens import claims, decoded, fingerprint

ORIGIN = "http://127.0.0.1:8765"
ISSUER = "http://localhost:8000"
FACTS = PageFacts(ISSUER, f"{ISSUER}/static/bastion.css", "demo", ".demo/demo-user-password.txt")


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = AppSettings(
        origin=ORIGIN,
        issuer=ISSUER,
        gateway=f"{ISSUER}/api",
        client_id="demo-app",
        scope="openid notes:read",
        facts=FACTS,
    )
    app = demo_app(settings, Scenario("other", 1, "http://localhost:8001"))
    with TestClient(app, base_url=ORIGIN, follow_redirects=False) as test_client:
        yield test_client


def _started(client: TestClient) -> dict[str, list[str]]:
    answer = client.get("/signin")
    assert answer.status_code == 303
    return parse_qs(urlsplit(answer.headers["location"]).query)


def test_sign_in_starts_a_pkce_request_from_a_session_cookie_script_cannot_read(
    client: TestClient,
) -> None:
    answer = client.get("/signin")
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{ISSUER}/authorize"
    request = parse_qs(location.query)
    assert request["redirect_uri"] == [f"{ORIGIN}/callback"]
    assert request["code_challenge_method"] == ["S256"]
    assert len(request["code_challenge"][0]) == 43
    cookie = answer.headers["set-cookie"].lower()
    assert cookie.startswith(f"{COOKIE}=")
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert _started(client)["state"] != request["state"], "a fresh state for every request"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"code": "c", "state": "forged", "iss": ISSUER}, "state"),
        ({"code": "c", "iss": ISSUER}, "state"),
        ({"code": "c", "state": None, "iss": "http://localhost:9999"}, "RFC 9207"),
        ({"code": "c", "state": None}, "RFC 9207"),
        ({"error": "access_denied", "state": None, "iss": ISSUER}, "access_denied"),
    ],
)
def test_the_callback_takes_only_the_answer_to_its_own_request(
    client: TestClient, query: dict[str, str | None], reason: str
) -> None:
    state = _started(client)["state"][0]
    params = {name: state if value is None else value for name, value in query.items()}
    answer = client.get("/callback", params=params)
    assert answer.status_code == 400
    assert reason in answer.text
    assert "Signed in" not in answer.text


def test_a_callback_without_a_session_is_refused(client: TestClient) -> None:
    answer = client.get("/callback", params={"code": "c", "state": "s", "iss": ISSUER})
    assert answer.status_code == 400
    assert "state" in answer.text


def test_another_host_name_is_sent_to_the_apps_origin(client: TestClient) -> None:
    answer = client.get("/callback?code=c", headers={"host": "localhost:8765"})
    assert answer.status_code == 307
    assert answer.headers["location"] == f"{ORIGIN}/callback?code=c"
    assert client.post("/actions", headers={"host": "evil.example"}).status_code == 421


def test_a_post_from_another_site_is_refused(client: TestClient) -> None:
    refused = client.post(
        "/actions", content=b"action=revoke", headers={"sec-fetch-site": "cross-site"}
    )
    assert refused.status_code == 403
    signed_out = client.post(
        "/actions", content=b"action=revoke", headers={"sec-fetch-site": "same-origin"}
    )
    assert signed_out.status_code == 303, "no session: back to the page"


def test_the_page_has_a_strict_policy_and_no_inline_code(client: TestClient) -> None:
    page = client.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert f"style-src 'self' {ISSUER};" in policy
    assert "'unsafe-inline'" not in policy
    assert "<script>" not in page.text
    assert "style=" not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert client.get("/static/demo.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/other.js").status_code == 404


def _jwt(payload: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256'})}.{part(payload)}.c2lnbmF0dXJl"


def test_the_page_shows_claims_and_fingerprints_never_a_token() -> None:
    access = _jwt({"sub": "u1", "client_id": "demo-app", "exp": 1_900_000_000})
    identity = _jwt({"sub": "u1", "aud": "demo-app"})
    refresh = "rt1.family-of-sixteen.3.mac"
    body = masked({"access_token": access, "refresh_token": refresh, "id_token": identity})
    shown = Exchange("POST", f"{ISSUER}/token", "", 200, "OK", (), orjson.dumps(body).decode())
    session = Session(
        tokens=Tokens(access, refresh, identity), answer=Answer("Sign in", "", (shown,))
    )
    html = render(FACTS, session)
    for token in (access, refresh, identity):
        assert token not in html
        assert fingerprint(token) in html
    assert "2030-03-17 17:46:40 UTC" in html, "exp as a readable time"
    assert "No <code>cnf</code> claim" in html


def test_decoding_reads_jwts_only_and_times_become_readable() -> None:
    assert decoded("rt1.opaque.0.mac") is None
    assert decoded("a.!!!.c") is None
    assert decoded(_jwt({"sub": "u1"})) == {"sub": "u1"}
    (exp, scope) = claims({"exp": 0, "amr": ["pwd", "otp"]})
    assert (exp.value, exp.moment) == ("1970-01-01 00:00:00 UTC", 0.0)
    assert scope.value == "pwd, otp"
