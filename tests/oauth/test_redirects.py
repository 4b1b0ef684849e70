"""Redirect URIs for native apps: registration rules and exact matching.

RFC 8252 §7.1 (private-use schemes), §7.2 (claimed https), §7.3 (loopback, any port),
§8.3 (no "localhost"); RFC 6749 §3.1.2 (no fragment); RFC 9700 §4.1.3 (exact match).
"""

from __future__ import annotations

import pytest

from bastion.errors import RedirectUriError
from bastion.oauth.redirects import matches, validate


@pytest.mark.parametrize(
    "uri",
    [
        "com.example.app:/oauth2redirect",
        "com.example.app://callback",
        "https://app.example.com/oauth/cb",
        "https://app.example.com/cb?x=1",
        "http://127.0.0.1/cb",
        "http://127.0.0.1:8080/cb",
        "http://[::1]/cb",
        "http://[::1]:49152/oauth",
    ],
)
def test_acceptable_native_redirects(uri: str) -> None:
    assert validate(uri) == uri


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("javascript:alert(1)", "javascript"),
        ("data:text/html,<script>", "data"),
        ("file:///etc/passwd", "file"),
        ("http://app.example.com/cb", "loopback"),
        ("http://localhost:8080/cb", "loopback"),
        ("https://app.example.com/cb#frag", "fragment"),
        ("https://*.example.com/cb", "wildcard"),
        ("https://app.example.com/*", "wildcard"),
        ("https://user:pw@app.example.com/cb", "userinfo"),
        ("https://evil@app.example.com/cb", "userinfo"),
        ("myapp:/cb", "reverse-domain"),
        ("/relative/cb", "absolute"),
        ("HTTPS://app.example.com/cb", "lower-case"),
        ("https:///cb", "host"),
        ("https://app.example.com/a/../b", "relative"),
        ("https://app.example.com/a/%2e%2e/b", "encoded"),
        ("https://app.example.com/cb\\evil", "encoded"),
        ("https://app.example.com/c b", "printable"),
        ("", "non-empty"),
        ("https://app.example.com/" + "a" * 2048, "2048"),
        ("http://127.0.0.1:99999/cb", "valid URI"),
        ("http://[::1]evil.com/cb", "loopback"),
        ("http://127.0.0.1.evil.com/cb", "loopback"),
    ],
)
def test_refused_at_registration(uri: str, reason: str) -> None:
    with pytest.raises(RedirectUriError, match=reason):
        validate(uri)


REGISTERED = [
    "https://app.example.com/cb",
    "com.example.app:/oauth2redirect",
    "http://127.0.0.1/loop",
    "http://[::1]:5000/v6",
]


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.com/cb",
        "com.example.app:/oauth2redirect",
        "http://127.0.0.1/loop",
        "http://127.0.0.1:51234/loop",  # any port for loopback (RFC 8252 §7.3)
        "http://[::1]:61000/v6",
        "http://[::1]/v6",
    ],
)
def test_exact_matches(uri: str) -> None:
    assert matches(REGISTERED, uri)


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.com/cb/",  # trailing slash
        "https://app.example.com/cbx",  # suffix
        "https://app.example.com/c",  # prefix
        "https://APP.example.com/cb",  # case
        "https://app.example.com/cb?x=1",  # added query
        "https://app.example.com/cb#x",  # fragment
        "https://app.example.com:443/cb",  # explicit default port
        "https://app.example.com/./cb",  # dot segment
        "https://app.example.com/%63b",  # percent-encoding
        "https://app.example.com.evil.com/cb",  # host suffix
        "https://evil.com/https://app.example.com/cb",
        "https://app.example.com@evil.com/cb",  # userinfo trick
        "https://app.example.com/cb/../evil",  # traversal
        "com.example.app:/oauth2redirect/x",
        "com.example.evil:/oauth2redirect",
        "http://127.0.0.1:5000/loop/x",  # loopback: only the port may vary
        "http://127.0.0.1:0/loop",
        "http://127.0.0.1:99999/loop",
        "http://127.0.0.2/loop",
        "http://localhost:5000/loop",
        "http://127.0.0.1@evil.com/loop",
        "http://[::1]:5000/v6?x",
        "https://127.0.0.1/loop",
    ],
)
def test_near_misses_do_not_match(uri: str) -> None:
    assert not matches(REGISTERED, uri)
