"""The demo's promise: each attack works against the naive upstream directly and fails
through Bastion (examples/notes_service.py behind examples/bastion.toml).

OWASP API Security Top 10 (2023): API1 broken object level authorization, API2 broken
authentication, API3 broken object property level authorization (mass assignment and
excessive data exposure), API8 security misconfiguration (debug endpoints), API9
improper inventory management (undeclared endpoints).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from bastion.clock import FixedClock
from bastion.oauth.tokens import MAX_CLOCK_SKEW
from tests.gateway.conftest import EXAMPLES, GatewayHarness, gateway_app
from tests.support.upstream import serve_in_thread

ALICE_SCOPES = ("notes:read", "notes:write", "profile")


@pytest.fixture
def upstream() -> Iterator[str]:
    import examples.notes_service as notes

    notes.NOTES.clear()
    notes.USERS.clear()
    with serve_in_thread(notes.app) as url:
        yield url


@pytest.fixture
def bastion(
    tmp_path: Path, upstream: str, environ: dict[str, str], now: FixedClock
) -> Iterator[GatewayHarness]:
    text = (EXAMPLES / "bastion.toml").read_text(encoding="utf-8")
    text = text.replace('data_dir = "."\n', "")
    text = text.replace("http://127.0.0.1:8001", upstream)
    text = text.replace("http://localhost:8000", "http://127.0.0.1:8000")
    with gateway_app(tmp_path, text, environ, clock=now) as harness:
        yield harness


def _unsigned(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'at+jwt'})}.{part(claims)}."


def test_reading_another_users_note(bastion: GatewayHarness, upstream: str) -> None:
    """API1: Mallory reads Alice's note by guessing its sequential id."""
    alice = bastion.mint("alice", scope=ALICE_SCOPES)
    mallory = bastion.mint("mallory", scope=ALICE_SCOPES)
    created = bastion.client.post(
        "/api/notes", json={"title": "diary", "body": "secret"}, headers=bastion.bearer(alice)
    )
    assert created.status_code == 201, created.text
    note_id = created.json()["id"]

    direct = httpx.get(f"{upstream}/notes/{note_id}")
    assert direct.status_code == 200
    assert direct.json()["body"] == "secret"

    through = bastion.client.get(f"/api/notes/{note_id}", headers=bastion.bearer(mallory))
    assert through.status_code == 404
    assert "secret" not in through.text
    own = bastion.client.get(f"/api/notes/{note_id}", headers=bastion.bearer(alice))
    assert own.status_code == 200
    assert own.json()["body"] == "secret"

    # Listing by user id: the path must name the caller.
    assert httpx.get(f"{upstream}/users/alice/notes").json()[0]["body"] == "secret"
    listed = bastion.client.get("/api/users/alice/notes", headers=bastion.bearer(mallory))
    assert listed.status_code == 404


def test_mass_assigning_admin(bastion: GatewayHarness, upstream: str) -> None:
    """API3: the upstream takes "admin" from a profile update; Bastion refuses the field."""
    direct = httpx.put(f"{upstream}/users/eve", json={"name": "Eve", "admin": True})
    assert direct.json()["admin"] is True

    token = bastion.mint("mallory", scope=ALICE_SCOPES)
    through = bastion.client.put(
        "/api/users/mallory", json={"name": "M", "admin": True}, headers=bastion.bearer(token)
    )
    assert through.status_code == 400
    assert through.json()["errors"] == [
        {"pointer": "/admin", "detail": "is not an allowed property"}
    ]
    assert httpx.get(f"{upstream}/users/mallory").json()["admin"] is False

    # Claiming another owner for a new note is mass assignment too.
    forged = bastion.client.post(
        "/api/notes", json={"title": "t", "owner": "alice"}, headers=bastion.bearer(token)
    )
    assert forged.status_code == 400


def test_debug_endpoint(bastion: GatewayHarness, upstream: str) -> None:
    """API8/API9: the upstream's debug endpoint exists directly, not through Bastion."""
    assert "hunter2" in httpx.get(f"{upstream}/debug/config").text
    token = bastion.mint("alice", scope=ALICE_SCOPES)
    for path in ("/api/debug/config", "/api/debug/../notes", "/api/notes/1/../../debug/config"):
        answer = bastion.client.get(path, headers=bastion.bearer(token))
        assert answer.status_code == 404, path
        assert "hunter2" not in answer.text


def test_internal_fields(bastion: GatewayHarness, upstream: str) -> None:
    """API3: the upstream answers with its shard name and password hashes."""
    token = bastion.mint("alice", scope=ALICE_SCOPES)
    created = bastion.client.post("/api/notes", json={"title": "t"}, headers=bastion.bearer(token))
    direct = httpx.get(f"{upstream}/notes/{created.json()['id']}").json()
    assert "db_shard" in direct
    assert "moderation_score" in direct
    assert set(created.json()) == {"id", "title", "body"}

    profile = bastion.client.get("/api/users/alice", headers=bastion.bearer(token))
    assert "password_hash" in httpx.get(f"{upstream}/users/alice").json()
    assert set(profile.json()) == {"id", "name", "email"}
    assert "server" not in profile.headers or "starlette" not in profile.headers["server"]
    assert "x-powered-by" not in profile.headers


def test_forged_and_dead_tokens(bastion: GatewayHarness, upstream: str, now: FixedClock) -> None:
    """API2: unsigned, wrongly signed, tampered, expired and revoked tokens (RFC 6750 §3.1,
    RFC 8725 §3.1: "none" is never accepted)."""
    real = bastion.mint("alice", client_id="demo-app", scope=ALICE_SCOPES)
    header, payload, signature = real.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

    # The upstream believes any token it is handed.
    unsigned = _unsigned(claims)
    direct = httpx.get(
        f"{upstream}/users/alice/notes", headers={"authorization": f"Bearer {unsigned}"}
    )
    assert direct.status_code == 200

    stranger = ECKey.generate_key("P-256")
    wrongly_signed = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "x"}, claims, stranger)
    forged_body = base64.urlsafe_b64encode(orjson.dumps({**claims, "sub": "bob"})).rstrip(b"=")
    tampered = f"{header}.{forged_body.decode()}.{signature}"
    for token in (unsigned, wrongly_signed, tampered, "not-a-jwt"):
        answer = bastion.client.get("/api/users/alice/notes", headers=bastion.bearer(token))
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == 'Bearer realm="bastion", error="invalid_token"'

    mine = bastion.client.get("/api/users/alice/notes", headers=bastion.bearer(real))
    assert mine.status_code == 200
    # RFC 7009: revoked at the authorization server, refused at the gateway at once,
    # although the verified token is cached.
    revoked = bastion.client.post("/revoke", data={"token": real, "client_id": "demo-app"})
    assert revoked.status_code == 200
    answer = bastion.client.get("/api/users/alice/notes", headers=bastion.bearer(real))
    assert answer.status_code == 401

    expiring = bastion.mint("alice", client_id="demo-app", scope=ALICE_SCOPES, lifetime=60)
    assert (
        bastion.client.get("/api/users/alice/notes", headers=bastion.bearer(expiring)).status_code
        == 200
    )
    now.advance(60 + MAX_CLOCK_SKEW)
    expired = bastion.client.get("/api/users/alice/notes", headers=bastion.bearer(expiring))
    assert expired.status_code == 401
