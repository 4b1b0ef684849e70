"""How apps and scopes are shown: branding rules (RFC 7591 §2 URIs, https only, safe in a
CSP), accent colours with readable labels (WCAG 2.2 §1.4.3), scope descriptions, and
error pages that say what happened."""

from __future__ import annotations

import itertools

import pytest

from bastion.errors import ClientMetadataError, OAuthError, UnsafeRedirect
from bastion.oauth.clients import (
    Branding,
    Client,
    check_branding,
    check_client,
    contrast,
    https_origin,
)
from bastion.web import presentation
from bastion.web.pages import View, render
from bastion.web.presentation import describe_scopes, explain
from bastion.web.static import text_on

APP = Client(
    client_id="notes-app",
    client_type="public",
    auth_method="none",
    redirect_uris=("com.example.notes:/callback",),
    scopes=frozenset({"openid"}),
    name="Notes",
)


@pytest.mark.parametrize(
    "uri",
    [
        "http://cdn.example/logo.png",  # plain HTTP: a network attacker could swap it
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "https://user:pass@cdn.example/logo.png",
        "https://cdn.example/logo.png#x",
        "https://cdn.example;script-src *.evil/logo.png",  # would inject a CSP directive
        "https://cdn.example'/logo.png",
        "https://cdn.example:99999/logo.png",
        "https:///logo.png",
        "https://cdn.example/a b.png",
        # Not a public name: localhost, one label, IP addresses in any spelling.
        "https://localhost/logo.png",
        "https://intranet/logo.png",
        "https://127.0.0.1/logo.png",
        "https://2130706433/logo.png",
        "https://0x7f.1/logo.png",
    ],
)
def test_a_branding_uri_must_be_plain_https(uri: str) -> None:
    for name in ("logo_uri", "client_uri", "policy_uri", "tos_uri"):
        with pytest.raises(ClientMetadataError) as refused:
            check_branding(Branding(**{name: uri}))
        assert refused.value.field == name


def test_a_branded_client_is_accepted_and_published() -> None:
    branding = Branding(
        logo_uri="https://cdn.example/logo.png",
        client_uri="https://notes.example",
        policy_uri="https://notes.example/privacy",
        tos_uri="https://notes.example/terms",
        accent_color="#0B6E4F",
    )
    client = check_client(Client(**{**vars(APP), "branding": branding}))
    metadata = client.to_metadata()
    assert metadata["logo_uri"] == "https://cdn.example/logo.png"
    assert metadata["accent_color"] == "#0B6E4F"
    assert Branding.from_metadata(metadata) == branding


@pytest.mark.parametrize(
    "color",
    [
        "0b6e4f",
        "#0b6e4",
        "#0b6e4fa",
        "red",
        "#gggggg",
        "#0b6e4f;",
        # WCAG 2.2 §1.4.11: a button too light to stand out from its white card.
        "#ffffff",
        "#f0f0f0",
        "#a0c4ff",
    ],
)
def test_an_accent_colour_is_six_hex_digits(color: str) -> None:
    with pytest.raises(ClientMetadataError):
        check_branding(Branding(accent_color=color))


def test_a_logo_origin_is_safe_in_a_csp_source_list() -> None:
    assert https_origin("https://CDN.example:8443/x/logo.png?v=1") == "https://cdn.example:8443"
    assert https_origin("https://cdn.example/logo.png") == "https://cdn.example"
    assert https_origin("https://cdn.example;script-src/x") is None
    assert https_origin("http://cdn.example/x") is None


def test_an_accent_label_always_meets_wcag_aa() -> None:
    # Every colour on a coarse grid of the RGB cube, including the worst mid-greys.
    steps = ["00", "33", "55", "76", "77", "78", "99", "bb", "dd", "ff"]
    for red, green, blue in itertools.product(steps, repeat=3):
        color = f"#{red}{green}{blue}"
        assert contrast(color, text_on(color)) >= 4.5, color


def test_scopes_are_described_in_the_page_language() -> None:
    configured = {"notes:read": {"en": "Read your notes", "de": "Ihre Notizen lesen"}}
    german = describe_scopes(("openid", "notes:read", "notes:write"), "de", configured)
    assert [(s.name, s.description) for s in german] == [
        ("openid", "Bestätigen, wer Sie sind"),
        ("notes:read", "Ihre Notizen lesen"),
        # No description anywhere: the scope's own name.
        ("notes:write", "notes:write"),
    ]
    # A regional language uses its language's text; an unknown one falls back to English.
    assert describe_scopes(("notes:read",), "de_AT", configured)[0].description == (
        "Ihre Notizen lesen"
    )
    assert describe_scopes(("notes:read",), "fr", configured)[0].description == ("Read your notes")
    # One text for every language.
    assert describe_scopes(("x",), "de", {"x": "Do x"})[0].description == "Do x"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (UnsafeRedirect("invalid_client", "unknown or disabled client"), presentation.UNKNOWN_APP),
        (
            UnsafeRedirect("invalid_request", "redirect_uri is not registered for this client"),
            presentation.BAD_RETURN,
        ),
        (
            OAuthError(
                "invalid_request",
                "this sign-in request has expired or belongs to another browser; "
                "start again from the app",
            ),
            presentation.EXPIRED,
        ),
        (
            UnsafeRedirect("invalid_request_uri", "request_uri is unknown, expired or used"),
            presentation.EXPIRED,
        ),
        (OAuthError("invalid_request", "unsupported prompt value"), presentation.GENERIC),
    ],
)
def test_an_error_page_says_what_happened(
    error: OAuthError, expected: presentation.Explanation
) -> None:
    assert explain(error) == expected


def test_a_client_name_cannot_reverse_the_page_text() -> None:
    # U+202E (right-to-left override) would flip Bastion's words around the name.
    for name in ("Orders\u202eppA", "Orders\u2066App", "Orders\x00App"):
        with pytest.raises(ClientMetadataError) as refused:
            check_client(Client(**{**vars(APP), "name": name}))
        assert refused.value.field == "client_name"
    assert check_client(Client(**{**vars(APP), "name": "Überweisungen 💸"})).name


def test_a_self_registered_app_is_marked_unverified() -> None:
    # RFC 7591 §5: a registrant chooses its own name and logo; say so on the page.
    registered = Client(**{**vars(APP), "source": "registration"})
    signed = Client(
        **{**vars(APP), "source": "registration", "statement_values": {"client_name": "Notes"}}
    )
    assert presentation.brand_of(APP).verified  # type: ignore[union-attr]
    assert not presentation.brand_of(registered).verified  # type: ignore[union-attr]
    assert presentation.brand_of(signed).verified  # type: ignore[union-attr]
    html = render(
        "login.html",
        View(language="de", brand=presentation.brand_of(registered)),
        client_name="Notes",
        interaction="i",
        csrf="c",
        message="",
        username="",
    )
    assert "Diese App hat sich selbst registriert" in html
    assert "<h1>Bei <bdi>Notes</bdi> anmelden</h1>" in html
