"""Token exchange (RFC 8693) through the real app: what the gateway may swap, and for what."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from bastion.authserver.access import Authentication
from bastion.clock import FixedClock
from tests.authserver.conftest import API, Server, exchange, start_server, tokens


def mint(
    server: Server,
    *,
    client_id: str = "mobile",
    audience: tuple[str, ...] = (API,),
    lifetime: float | None = None,
    act: dict[str, Any] | None = None,
) -> str:
    """An access token for alice, minted and indexed as the token endpoint does."""
    call = functools.partial(
        server.runtime.auth.access.mint,
        client_id=client_id,
        who=Authentication(server.user_id),
        scope=("orders:read",),
        audience=audience,
        lifetime=lifetime,
        act=act,
    )
    token, _ = server.call(call)
    return str(token)


@pytest.fixture
def clock() -> FixedClock:
    # Whole seconds, so a token's exp (whole seconds too) is exactly where the test puts it.
    return FixedClock(float(int(time.time())))


@pytest.fixture
def timed(
    tmp_path: Path, database_url: str, master_key_b64: str, clock: FixedClock
) -> Iterator[Server]:
    with start_server(tmp_path, database_url, master_key_b64, clock=clock) as started:
        yield started


def test_token_exchange_narrows_and_names_the_app(server: Server) -> None:
    """RFC 8693 §2, §4.1: audience from the allowlist, scopes narrowed, act set."""
    first = tokens(server, resource=API)
    response = exchange(server, first["access_token"])
    assert response.status_code == 200, response.text
    keys = KeySet.import_key_set(server.client.get("/jwks.json").json())
    claims = jwt.decode(response.json()["access_token"], keys, algorithms=["ES256"]).claims
    assert claims["aud"] == "https://orders.internal"
    assert claims["scope"] == "orders:read"
    assert claims["act"]["sub"] == "mobile"
    assert claims["client_id"] == "gateway"
    assert claims["exp"] - claims["iat"] <= 60

    token = first["access_token"]
    assert exchange(server, token, audience="https://payments.internal").json()["error"] == (
        "invalid_target"
    )
    assert exchange(server, token, scope="orders:write").json()["error"] == "invalid_scope"
    assert exchange(server, "junk").json()["error"] == "invalid_grant"
    assert exchange(server, first["id_token"]).json()["error"] == "invalid_grant"


@pytest.mark.parametrize("remaining", [0.0, 0.5, -10.0])
def test_a_subject_token_about_to_expire_is_refused(
    timed: Server, clock: FixedClock, remaining: float
) -> None:
    """RFC 8693 §2.2 and RFC 7519 §4.1.4: the exchanged token must not outlive its subject.

    Verification forgives 30 s of clock skew past ``exp``, so ``exp - now`` can be zero or
    negative for a subject token that still verifies; neither may become a lifetime (zero
    used to fall back to the full default, a negative one minted a dead token).
    """
    subject = mint(timed, lifetime=60)
    clock.advance(60 - remaining)
    response = exchange(timed, subject)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant"
    assert timed.events("oauth.exchange.refused")[-1]["details"]["reason"] == (
        "the subject token expires too soon"
    )


def test_the_exchanged_token_ends_with_its_subject(timed: Server, clock: FixedClock) -> None:
    subject = mint(timed, lifetime=60)
    clock.advance(45)
    response = exchange(timed, subject)
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] == 15


def test_a_zero_lifetime_is_not_the_default(server: Server) -> None:
    """Zero is a lifetime, not "unset": minting it is a mistake, never a 5-minute token."""
    with pytest.raises(ValueError, match="at least one second"):
        mint(server, lifetime=0.0)
