"""Client registration rules (RFC 7591 §2; RFC 8252 §8.4, §8.5)."""

from __future__ import annotations

import pytest

from bastion.errors import ClientMetadataError
from bastion.oauth.clients import (
    CLIENT_CREDENTIALS,
    TOKEN_EXCHANGE,
    Client,
    check_client,
    hash_secret,
    secret_matches,
)

NATIVE = Client(
    client_id="app",
    client_type="public",
    auth_method="none",
    redirect_uris=("com.example.app:/cb",),
    scopes=frozenset({"openid"}),
)
BACKEND = Client(
    client_id="svc",
    client_type="confidential",
    auth_method="client_secret_basic",
    grant_types=frozenset({CLIENT_CREDENTIALS, TOKEN_EXCHANGE}),
    secret_hash=hash_secret("s" * 43),
)


def test_good_clients() -> None:
    assert check_client(NATIVE) is NATIVE
    assert check_client(BACKEND) is BACKEND


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"auth_method": "client_secret_basic"}, "token_endpoint_auth_method"),
        ({"grant_types": frozenset({CLIENT_CREDENTIALS})}, "grant_types"),
        ({"secret_hash": "x"}, "client_secret"),
        ({"redirect_uris": ()}, "redirect_uris"),
        ({"redirect_uris": ("http://evil.example/cb",)}, "redirect_uris"),
        ({"grant_types": frozenset({"password"})}, "grant_types"),  # never the password grant
        ({"grant_types": frozenset({"implicit"})}, "grant_types"),
        ({"client_id": "bad id!"}, "client_id"),
        ({"scopes": frozenset({"has space"})}, "scope"),
        ({"resources": frozenset({"https://api#frag"})}, "resources"),
    ],
)
def test_public_client_refusals(changes: dict[str, object], field: str) -> None:
    from dataclasses import replace

    with pytest.raises(ClientMetadataError) as caught:
        check_client(replace(NATIVE, **changes))  # type: ignore[arg-type]
    assert caught.value.field == field


def test_confidential_clients_must_authenticate() -> None:
    from dataclasses import replace

    with pytest.raises(ClientMetadataError):
        check_client(replace(BACKEND, auth_method="none"))
    with pytest.raises(ClientMetadataError):
        check_client(replace(BACKEND, secret_hash=None))
    with pytest.raises(ClientMetadataError):
        check_client(replace(BACKEND, auth_method="private_key_jwt", jwks={"keys": []}))


def test_secret_hash_comparison() -> None:
    stored = hash_secret("correct")
    assert secret_matches("correct", stored)
    assert not secret_matches("wrong", stored)
    assert "correct" not in repr(BACKEND)
