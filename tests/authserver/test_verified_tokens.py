"""Introspection remembers which access tokens it verified (``AccessTokens``): the
ECDSA check is skipped for a token seen before, never anything else. A remembered token
still expires, is still revoked, is verified again once the keys change, and no other
string is taken for it."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import orjson

from bastion.clock import FixedClock
from tests.authserver.conftest import Server, start_server, tokens
from tests.authserver.test_token_lifecycle import introspect


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = orjson.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def test_a_changed_signature_or_payload_is_refused_after_the_token_was_verified(
    server: Server,
) -> None:
    token = str(tokens(server)["access_token"])
    assert introspect(server, token)["active"] is True
    assert introspect(server, token)["active"] is True  # remembered
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert introspect(server, f"{header}.{payload}.{flipped}")["active"] is False
    forged = dict(_claims(token), scope="admin")
    encoded = base64.urlsafe_b64encode(orjson.dumps(forged)).decode().rstrip("=")
    assert introspect(server, f"{header}.{encoded}.{signature}")["active"] is False
    assert introspect(server, token)["active"] is True


def test_a_remembered_token_is_still_revoked(server: Server) -> None:
    issued = tokens(server)
    assert introspect(server, issued["access_token"])["active"] is True
    server.client.post("/revoke", data={"token": issued["refresh_token"], "client_id": "mobile"})
    assert introspect(server, issued["access_token"])["active"] is False


def test_a_remembered_token_still_expires(
    tmp_path: Path, database_url: str, master_key_b64: str
) -> None:
    clock = FixedClock(float(int(time.time())))
    with start_server(tmp_path, database_url, master_key_b64, clock=clock) as server:
        token = str(tokens(server)["access_token"])
        assert introspect(server, token)["active"] is True
        exp = _claims(token)["exp"]
        clock.set(exp + 20)  # within the clock skew verification forgives
        assert introspect(server, token)["active"] is True
        clock.set(exp + 31)
        assert introspect(server, token)["active"] is False


def test_a_remembered_token_is_verified_again_once_its_key_is_unpublished(
    server: Server,
) -> None:
    token = str(tokens(server)["access_token"])
    assert introspect(server, token)["active"] is True
    keys = server.runtime.keys
    old = token.split(".")[0]
    kid = orjson.loads(base64.urlsafe_b64decode(old + "=" * (-len(old) % 4)))["kid"]
    server.call(lambda: keys.rotate(immediate=True))
    server.call(lambda: keys.retire(kid, unpublish=True))
    assert introspect(server, token)["active"] is False
    fresh = str(tokens(server)["access_token"])
    assert introspect(server, fresh)["active"] is True
