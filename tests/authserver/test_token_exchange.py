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
from bastion.errors import OAuthError
from bastion.oauth.clients import TOKEN_EXCHANGE as EXCHANGE
from bastion.oauth.clients import hash_secret
from tests.authserver.conftest import (
    API,
    ISSUER,
    Server,
    exchange,
    start_server,
    tokens,
)

ORDERS = "https://orders.internal"
PARTNER = ("partner", "partner-secret-0123456789abcdefghijklmnopqrstu")
ORDERS_SERVICE = ("orders", "orders-secret-0123456789abcdefghijklmnopqrstuv")
# A partner may ask for the API's audience but operates no resource server; the orders
# service receives internal tokens and may pass them on (a delegation chain).
CLIENTS = f"""
[[oauth.clients]]
client_id = "partner"
type = "confidential"
grant_types = ["{EXCHANGE}"]
scopes = ["orders:read"]
resources = ["{API}"]
secret_sha256 = "{hash_secret(PARTNER[1])}"
[[oauth.clients]]
client_id = "orders"
type = "confidential"
grant_types = ["{EXCHANGE}"]
scopes = ["orders:read"]
resources = ["https://billing.internal"]
exchange_subject_audiences = ["{ORDERS}"]
exchange_delegation_chains = true
secret_sha256 = "{hash_secret(ORDERS_SERVICE[1])}"
"""


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


def claims_of(server: Server, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(server.client.get("/jwks.json").json())
    return dict(jwt.decode(token, keys, algorithms=["ES256"]).claims)


def refusal(server: Server) -> str:
    reason: str = server.events("oauth.exchange.refused")[-1]["details"]["reason"]
    return reason


@pytest.fixture
def clock() -> FixedClock:
    # Whole seconds, so a token's exp (whole seconds too) is exactly where the test puts it.
    return FixedClock(float(int(time.time())))


@pytest.fixture
def services(tmp_path: Path, database_url: str, master_key_b64: str) -> Iterator[Server]:
    with start_server(tmp_path, database_url, master_key_b64, oauth=CLIENTS) as started:
        yield started


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
    claims = claims_of(server, response.json()["access_token"])
    assert claims["aud"] == ORDERS
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
    """RFC 8693 §2.2: at most 60 s, and never past the subject token's exp."""
    subject = mint(timed, lifetime=60)
    clock.advance(45)
    response = exchange(timed, subject)
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] == 15


def test_a_zero_lifetime_is_not_the_default(server: Server) -> None:
    """Zero is a lifetime, not "unset": minting it is a mistake, never a 5-minute token."""
    with pytest.raises(ValueError, match="at least one second"):
        mint(server, lifetime=0.0)


def test_a_token_meant_for_another_audience_is_refused(server: Server) -> None:
    """RFC 8693 §2.1 and §5: the app's token for Bastion itself (the default audience)
    was not issued for the gateway, which operates the API only; it cannot be swapped."""
    first = tokens(server)
    assert claims_of(server, first["access_token"])["aud"] == ISSUER
    response = exchange(server, first["access_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert refusal(server) == "the subject token was not issued for this client"


def test_a_client_that_may_ask_for_an_audience_does_not_receive_its_tokens(
    services: Server,
) -> None:
    """RFC 8693 §5: being allowed to request the API's audience does not make the partner
    the API; a user's token for the API stays the API's (the gateway's)."""
    subject = mint(services)
    response = exchange(services, subject, auth=PARTNER, audience=API)
    assert response.json()["error"] == "invalid_grant"
    assert refusal(services) == "the subject token was not issued for this client"
    assert exchange(services, subject).status_code == 200, "the gateway operates the API"


def test_a_token_issued_to_the_client_itself_may_be_exchanged(services: Server) -> None:
    own = mint(services, client_id="partner", audience=("https://elsewhere.example",))
    response = exchange(services, own, auth=PARTNER, audience=API)
    assert response.status_code == 200, response.text


def test_internal_tokens_are_refused_as_subjects_by_default(server: Server) -> None:
    """RFC 8693 §4.1: a token that already names an actor is an internal one; passing it
    on again is a delegation chain, which a client must be allowed explicitly."""
    internal = exchange(server, tokens(server, resource=API)["access_token"]).json()
    response = exchange(server, internal["access_token"])
    assert response.json()["error"] == "invalid_grant"
    assert refusal(server) == "the subject token is delegated and this client may not chain"
    upstream_received = mint(server, client_id="gateway", audience=(API,), act={"sub": "app"})
    assert exchange(server, upstream_received).json()["error"] == "invalid_grant"


def test_a_client_allowed_to_chain_nests_the_actors(services: Server) -> None:
    """RFC 8693 §4.1: the prior actor is nested inside the new one."""
    internal = exchange(services, mint(services)).json()["access_token"]
    response = exchange(
        services, internal, auth=ORDERS_SERVICE, audience="https://billing.internal"
    )
    assert response.status_code == 200, response.text
    act = claims_of(services, response.json()["access_token"])["act"]
    assert act["sub"] == "gateway"
    assert act["act"]["sub"] == "mobile"


def test_an_exchanged_token_is_revoked_with_its_subjects_family(server: Server) -> None:
    """Revoking the app's grant (RFC 7009 §2.1: its refresh token and every token of the
    family) revokes the tokens exchanged from it too, rather than leaving them live."""
    first = tokens(server, resource=API)
    exchanged = exchange(server, first["access_token"]).json()["access_token"]
    verify = server.runtime.auth.access.verify
    assert server.call(verify, exchanged)["sub"] == server.user_id
    server.client.post("/revoke", data={"token": first["refresh_token"], "client_id": "mobile"})
    with pytest.raises(OAuthError):
        server.call(verify, exchanged)
