"""The authorization request: what is refused, and whether the refusal may be redirected."""

from __future__ import annotations

import pytest

from bastion.errors import OAuthError, UnsafeRedirect
from bastion.oauth import pkce
from bastion.oauth.authorize import identify, narrow_resources, validate
from bastion.oauth.clients import Client
from bastion.oauth.params import parse

APP = Client(
    client_id="mobile",
    client_type="public",
    auth_method="none",
    redirect_uris=("com.example.app:/cb", "http://127.0.0.1/loop"),
    scopes=frozenset({"openid", "profile", "orders:read"}),
    resources=frozenset({"https://api.example.com"}),
)
ONE_URI = Client(
    client_id="single",
    client_type="public",
    auth_method="none",
    redirect_uris=("com.example.one:/cb",),
    scopes=frozenset({"openid"}),
)
DISABLED = Client(
    client_id="off",
    client_type="public",
    auth_method="none",
    redirect_uris=("com.example.off:/cb",),
    enabled=False,
)
CLIENTS = {c.client_id: c for c in (APP, ONE_URI, DISABLED)}
CHALLENGE = pkce.s256("v" * 43)


def request(**overrides: str | None) -> list[tuple[str, str]]:
    base: dict[str, str | None] = {
        "client_id": "mobile",
        "redirect_uri": "com.example.app:/cb",
        "response_type": "code",
        "scope": "openid orders:read",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "state": "xyz",
        "nonce": "n-1",
    }
    base.update(overrides)
    return [(k, v) for k, v in base.items() if v is not None]


def run(pairs: list[tuple[str, str]], *, pushed: bool = False) -> object:
    params = parse(pairs)
    client, redirect_uri = identify(params, CLIENTS.get)
    return validate(params, client, redirect_uri, pushed=pushed)


def test_a_good_request() -> None:
    result = run(request())
    assert result.scope == ("openid", "orders:read")  # type: ignore[attr-defined]
    assert result.state == "xyz"  # type: ignore[attr-defined]
    assert result.nonce == "n-1"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"client_id": None}, "invalid_client"),
        ({"client_id": "nobody"}, "invalid_client"),
        ({"client_id": "off", "redirect_uri": "com.example.off:/cb"}, "invalid_client"),
        ({"redirect_uri": "com.example.app:/cb/evil"}, "invalid_request"),
        ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
        ({"redirect_uri": None}, "invalid_request"),  # two registered: must choose
    ],
)
def test_client_and_redirect_errors_are_never_redirected(
    overrides: dict[str, str | None], error: str
) -> None:
    """RFC 9700 §4.11.2 / RFC 6749 §4.1.2.1: no redirect before both are verified."""
    with pytest.raises(UnsafeRedirect) as caught:
        run(request(**overrides))
    assert caught.value.error == error


def test_redirect_uri_may_be_omitted_with_exactly_one_registered() -> None:
    params = parse(request(client_id="single", redirect_uri=None, scope="openid"))
    assert identify(params, CLIENTS.get)[1] == "com.example.one:/cb"


def test_loopback_with_any_port() -> None:
    params = parse(request(redirect_uri="http://127.0.0.1:61111/loop"))
    assert identify(params, CLIENTS.get)[1] == "http://127.0.0.1:61111/loop"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),  # no implicit
        ({"response_type": "code id_token"}, "unsupported_response_type"),  # no hybrid
        ({"response_type": None}, "unsupported_response_type"),
        ({"code_challenge": None}, "invalid_request"),  # PKCE required
        ({"code_challenge_method": "plain"}, "invalid_request"),  # no downgrade
        ({"code_challenge_method": None}, "invalid_request"),
        ({"scope": None}, "invalid_scope"),
        ({"scope": "openid admin"}, "invalid_scope"),  # not allowed
        ({"prompt": "none login"}, "invalid_request"),
        ({"prompt": "bogus"}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"max_age": "soon"}, "invalid_request"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"request": "eyJ..."}, "request_not_supported"),
    ],
)
def test_redirectable_errors(overrides: dict[str, str | None], error: str) -> None:
    with pytest.raises(OAuthError) as caught:
        run(request(**overrides))
    assert not isinstance(caught.value, UnsafeRedirect)
    assert caught.value.error == error


def test_a_parameter_sent_twice_is_invalid_request() -> None:
    """RFC 6749 §3.1: request parameters MUST NOT be included more than once."""
    with pytest.raises(OAuthError) as caught:
        run([*request(), ("scope", "openid")])
    assert caught.value.error == "invalid_request"
    assert "scope" in caught.value.description


def test_resources_are_checked_against_the_allowlist() -> None:
    """RFC 8707 §2: several resources may be sent; each must be allowed."""
    ok = run([*request(), ("resource", "https://api.example.com")])
    assert ok.resources == ("https://api.example.com",)  # type: ignore[attr-defined]
    for bad in ("https://other.example.com", "https://api.example.com#x", "not a uri"):
        with pytest.raises(OAuthError) as caught:
            run([*request(), ("resource", bad)])
        assert caught.value.error == "invalid_target"


def test_a_token_request_narrows_the_grants_audience_only() -> None:
    """RFC 8707 §2.2: the grant's audience, the default one included, is the ceiling."""
    api, default = "https://api.example.com", "https://as.example.com"
    assert narrow_resources((), (default,), APP) == (default,)
    assert narrow_resources((api,), (api,), APP) == (api,)
    for requested, ceiling in (((api,), (default,)), (("https://other.example.com",), (api,))):
        with pytest.raises(OAuthError) as caught:
            narrow_resources(requested, ceiling, APP)
        assert caught.value.error == "invalid_target"


def test_par_required_clients_refuse_plain_requests() -> None:
    """RFC 9126 §6: require_pushed_authorization_requests."""
    strict = Client(
        client_id="strict",
        client_type="public",
        auth_method="none",
        redirect_uris=("com.example.s:/cb",),
        scopes=frozenset({"openid"}),
        require_pushed_authorization_requests=True,
    )
    params = parse(request(client_id="strict", redirect_uri="com.example.s:/cb", scope="openid"))
    with pytest.raises(OAuthError) as caught:
        validate(params, strict, "com.example.s:/cb", pushed=False)
    assert caught.value.error == "invalid_request"
    assert validate(params, strict, "com.example.s:/cb", pushed=True).scope == ("openid",)
