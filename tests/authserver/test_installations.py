"""The pure part of attestation-gated registration (RFC 7591): reading
``device_attestation``, and deriving an installation's client from its app's, never
wider (properties drawn by hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.authserver.installations import (
    installation_app,
    installation_client,
    parse_attestation,
)
from bastion.errors import OAuthError
from bastion.oauth.clients import Branding, Client

APP = Client(
    client_id="shop",
    client_type="public",
    auth_method="none",
    redirect_uris=("com.example.shop:/cb", "com.example.shop:/other", "https://shop.example/cb"),
    scopes=frozenset({"openid", "profile", "orders:read"}),
    grant_types=frozenset({"authorization_code", "refresh_token"}),
    resources=frozenset({"https://api.example.com"}),
    name="Shop",
    require_dpop_nonce=True,
    auth_policy="mfa",
    source="config",
    branding=Branding.from_metadata({"accent_color": "#112233"}),
)
WORDS = st.sampled_from(
    ["openid", "profile", "orders:read", "orders:write", "admin", "offline_access"]
)
URIS = st.sampled_from(
    [*APP.redirect_uris, "com.example.evil:/cb", "https://evil.example/cb", "http://127.0.0.1/cb"]
)
GRANTS = st.sampled_from(
    ["authorization_code", "refresh_token", "client_credentials", "password", "implicit"]
)


@given(
    scopes=st.lists(WORDS, max_size=4),
    uris=st.lists(URIS, max_size=3),
    grants=st.lists(GRANTS, max_size=3),
)
def test_an_installation_is_never_wider_than_its_app(
    scopes: list[str], uris: list[str], grants: list[str]
) -> None:
    metadata: dict[str, Any] = {}
    if scopes:
        metadata["scope"] = " ".join(scopes)
    if uris:
        metadata["redirect_uris"] = uris
    if grants:
        metadata["grant_types"] = grants
    error = None
    try:
        client = installation_client(APP, metadata, client_id="install-1")
    except OAuthError as exc:
        error = exc.error
    if error is not None:
        assert error in ("invalid_client_metadata", "invalid_redirect_uri")
        return
    assert client.scopes <= APP.scopes
    assert set(client.redirect_uris) <= set(APP.redirect_uris)
    assert client.grant_types <= APP.grant_types
    assert client.resources == APP.resources
    assert client.is_public
    assert client.secret_hash is None
    assert client.dpop_bound_access_tokens


def test_what_the_request_cannot_choose_is_the_apps() -> None:
    client = installation_client(
        APP, {"client_name": "Totally Legit", "accent_color": "#ff0000"}, client_id="i"
    )
    assert (client.name, client.branding, client.auth_policy) == (APP.name, APP.branding, "mfa")
    assert client.require_dpop_nonce
    assert installation_app(client) == "shop"
    assert client.statement_values is not None
    assert client.statement_values["token_endpoint_auth_method"] == "none"


def test_other_clients_are_no_installations() -> None:
    assert installation_app(APP) is None


def test_an_app_without_a_code_flow_has_no_installations() -> None:
    backend = Client(
        client_id="backend",
        client_type="confidential",
        auth_method="client_secret_basic",
        grant_types=frozenset({"client_credentials"}),
        source="config",
    )
    with pytest.raises(OAuthError) as refused:
        installation_client(backend, {}, client_id="i")
    assert refused.value.error == "invalid_client_metadata"


def test_both_platforms_parse() -> None:
    apple = parse_attestation(
        {"platform": "apple", "key_id": "A" * 43, "attestation_object": "o2Nm", "challenge": "c"}
    )
    assert (apple.platform, apple.attestation_object) == ("apple", b"\xa3cf")
    google = parse_attestation({"platform": "google", "integrity_token": "t", "challenge": "c"})
    assert (google.platform, google.integrity_token) == ("google", "t")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=5)
    ),
    max_leaves=20,
)


@given(
    st.one_of(
        JSON,
        st.fixed_dictionaries(
            {"platform": st.sampled_from(["apple", "google"]), "challenge": JSON},
            optional={
                "key_id": JSON,
                "attestation_object": JSON,
                "integrity_token": JSON,
                "extra": JSON,
            },
        ),
    )
)
def test_any_member_parses_or_is_invalid_metadata(value: Any) -> None:
    """Hostile input: parsed, or refused with invalid_client_metadata, nothing else."""
    error = "invalid_client_metadata"
    try:
        parse_attestation(value)
    except OAuthError as exc:
        error = exc.error
    assert error == "invalid_client_metadata"
