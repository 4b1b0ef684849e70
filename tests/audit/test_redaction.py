"""Redaction: no secret, token, code, password, cookie or Authorization value gets through."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.audit import redaction
from bastion.audit.redaction import MAX_STRING, REDACTED, _scan, is_sensitive, redact, redact_text

# Opaque on purpose: a JWT-shaped secret would be caught by shape and hide gaps in the
# by-name rules.
SECRET = "s3cr3tVALUE9f8e7d"
SPACED = "correct horse battery staple"
JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"


def leaks(value: Any) -> bool:
    return SECRET in orjson.dumps(redact(value), default=str).decode()


def test_sensitive_names_in_any_spelling() -> None:
    for name in [
        "Authorization",
        "AUTHORIZATION",
        "cookie",
        "Set-Cookie",
        "password",
        "client_secret",
        "clientSecret",
        "refresh_token",
        "refreshToken",
        "id-token",
        "code",
        "code_verifier",
        "X-Api-Key",
        "api_key",
        "DPoP",
        "totp",
        "recovery_code",
        "private_key",
        "upstream_secret",
        "session_token",
    ]:
        assert is_sensitive(name), name
    for name in ["user", "scope", "state", "client_id", "path", "status", "token_type_hint"]:
        assert not is_sensitive(name) or name == "token_type_hint", name


def test_mapping_values_under_sensitive_keys() -> None:
    record = {
        "headers": {"Authorization": f"Bearer {SECRET}", "Accept": "json"},
        "form": {"password": SECRET, "username": "alice"},
        "client": {"clientSecret": SECRET},
    }
    out = redact(record)
    assert out["headers"] == {"Authorization": REDACTED, "Accept": "json"}
    assert out["form"] == {"password": REDACTED, "username": "alice"}
    assert not leaks(record)


def test_asgi_header_pairs_as_bytes() -> None:
    headers = [
        (b"host", b"api"),
        (b"authorization", f"DPoP {SECRET}".encode()),
        (b"cookie", f"sid={SECRET}".encode()),
    ]
    out = redact(headers)
    assert out[0] == ["host", "api"]
    assert out[1][1] == REDACTED
    assert not leaks(headers)


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {SECRET}",
        f"basic {SECRET}",
        f"GET /cb?state=ok&code={SECRET}",
        f"refresh_token={SECRET}; path=/",
        f'{{"access_token": "{SECRET}"}}',
        f"password:{SECRET}",
        f"client_secret = '{SECRET}'",
        # A harmless name first must not shield what follows (or sits inside its value).
        f"https://app.example/cb?code={SECRET}&state=s",
        f"https://app/cb#access_token={SECRET}",
        f"Location: https://app/cb?code={SECRET}",
        f"ValueError: client_secret={SECRET}",
        f"error: password={SECRET}",
        f"url=https://x/cb?code={SECRET}",
        f"x=refresh_token={SECRET}",
        # Shapes that are not name=value.
        f"Cookie: theme=dark; sid={SECRET}",
        f"Set-Cookie: __Host-session={SECRET}; Secure; HttpOnly",
        f"postgresql://bastion:{SECRET}@db:5432/bastion",
        f"redis://:{SECRET}@cache:6379/0",
        f'{{\\"password\\": \\"{SECRET}\\"}}',
        f"user[password]={SECRET}",
        f"next=%2Fcb%3Fcode%3D{SECRET}",
        f"next=%252Fcb%253Fcode%253D{SECRET}",
        f'password => "{SECRET}"',
        f"aws_secret_access_key={SECRET}",
        f"otp_code={SECRET} mfa_code={SECRET} verification_code={SECRET}",
        f"id_token_hint={SECRET}",
        # Encoded delimiters must not end a value early.
        f"password=correct%20horse%20{SECRET}",
        f"password=ab%26{SECRET}",
        f"password=ab%3B{SECRET}",
        f"postgresql://u:ab%20cd{SECRET}@host/db",
        f"redis://:ab%2Fcd{SECRET}@h",
        f"redis://:ab%40cd{SECRET}@h",
        f"postgresql://u@h/db?password=ab%26cd{SECRET}",
        f"code%2525253D{SECRET}",
        # Separators and schemes.
        f"token = {SECRET}",
        f"dpop\t=\t{SECRET}",
        f"basic = {SECRET}",
        f"Authorization: ApiKey {SECRET}",
        f"Authorization: SSWS {SECRET}",
        # Quotes, brackets and reprs.
        f"""{{"password": "a\\"{SECRET}"}}""",
        f"""{{'password': 'a\\'"{SECRET}'}}""",
        f"K(master_key=b'x{SECRET}')",
        f"{{'cookie': ['a', '{SECRET}']}}",
        f"{{'token': ('x', '{SECRET}')}}",
        f'"credentials": {{"x": "{SECRET}"}}',
        f"password=<{SECRET}>",
        f"('password', '{SECRET}')",
        f"[(b'cookie', b'foo={SECRET}')]",
        # Bastion's own cookies and fields, and common form names.
        f"bastion-session={SECRET}",
        f"__Host-bastion-session={SECRET}",
        f"csrf={SECRET}",
        f"password1={SECRET}&password2={SECRET}",
        f"password_confirmation={SECRET}",
        f"https://{SECRET}@github.example/repo",
    ],
)
def test_free_text_credentials(text: str) -> None:
    assert SECRET not in redact_text(text), redact_text(text)


@pytest.mark.parametrize("text", [f'password="{SPACED}"', f'{{"client_secret": "{SPACED}"}}'])
def test_quoted_values_with_spaces_are_redacted_whole(text: str) -> None:
    out = redact_text(text)
    assert not any(word in out for word in SPACED.split()), out


def test_harmless_pairs_are_kept() -> None:
    out = redact_text(f"/cb?state=ok&lang=en&code={SECRET}")
    assert "state=ok" in out
    assert "lang=en" in out


def test_jose_compact_serialisations_anywhere() -> None:
    assert JWT not in redact_text(f"token was {JWT} in the url /x?t={JWT}")
    jwe = "eyJhbGciOiJSU0EtT0FFUCJ9.a2V5.aXY.Y2lwaGVy.dGFn"
    assert "Y2lwaGVy" not in redact_text(jwe)


def test_pem_private_keys() -> None:
    pem = f"-----BEGIN EC PRIVATE KEY-----\n{SECRET}\n-----END EC PRIVATE KEY-----"
    assert SECRET not in redact_text(f"loaded {pem} ok")
    assert SECRET not in redact_text(f"truncated -----BEGIN PRIVATE KEY-----\n{SECRET}")


def test_hostile_structures_do_not_raise() -> None:
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    assert redact(cyclic)["self"] == "[cycle]"

    deep: Any = SECRET
    for _ in range(5000):
        deep = {"x": [deep]}
    assert not leaks(deep)

    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("boom")

    jwk = redact({"kty": "EC", "crv": "P-256", "x": "pub", "d": SECRET})
    assert jwk["d"] == REDACTED
    assert jwk["x"] == "pub"
    out = redact(
        {
            1: "int key",
            (2, 3): "tuple key",
            "obj": Hostile(),
            "b": b"\xff\xfe",
            b"cookie": f"sid={SECRET}".encode(),
        }
    )
    assert SECRET not in str(out)
    assert out["obj"] == "<unprintable Hostile>"
    assert out["1"] == "int key"
    orjson.dumps(out)


def test_huge_strings_are_truncated() -> None:
    out = redact_text("a" * 100_000)
    assert len(out) < 5000


def test_input_is_not_mutated() -> None:
    record = {"password": SECRET, "nested": {"token": SECRET}}
    redact(record)
    assert record == {"password": SECRET, "nested": {"token": SECRET}}


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_tree = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)
sensitive_key = st.sampled_from(
    [
        "password",
        "Authorization",
        "refresh_token",
        "clientSecret",
        "Cookie",
        "code",
        "x-api-key",
        "id_token",
    ]
)


@given(tree=json_tree, key=sensitive_key, path=st.lists(st.text(max_size=5), max_size=4))
def test_a_secret_under_a_sensitive_key_never_survives(
    tree: Any, key: str, path: list[str]
) -> None:
    planted: Any = {key: SECRET, "other": tree}
    for step in path:
        planted = {step: planted} if step else [tree, planted]
    assert not leaks(planted)


@given(
    value=st.recursive(
        json_leaf | st.binary(max_size=10),
        lambda c: (
            st.lists(c, max_size=3)
            | st.tuples(c, c)
            | st.dictionaries(st.text(max_size=5), c, max_size=3)
        ),
    )
)
def test_redact_always_returns_something_serialisable(value: Any) -> None:
    orjson.dumps(redact(value))


harmless_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="%"), max_size=30
)
text_secret = st.from_regex(r"[A-Za-z0-9]{12,20}", fullmatch=True)
joiner = st.sampled_from(["=", ": ", '": "', " = ", "=", "%3D"])


@given(prefix=harmless_text, suffix=harmless_text, key=sensitive_key, sep=joiner, value=text_secret)
def test_a_secret_after_a_sensitive_name_in_text_never_survives(
    prefix: str, suffix: str, key: str, sep: str, value: str
) -> None:
    """Whatever surrounds it, ``name<sep>value`` loses its value."""
    text = f"{prefix} {key}{sep}{value} {suffix}"
    assert value not in redact_text(text).replace(prefix, "").replace(suffix, "")


@given(
    st.from_regex(r"[A-Za-z0-9_.\-]{0,80}", fullmatch=True)
    | st.builds(
        lambda a, b: f"{a}eyJ{b}", st.text("ab.-_", max_size=8), st.text("xy.", max_size=30)
    )
)
def test_plain_text_skips_the_scan_only_where_the_scan_would_change_nothing(text: str) -> None:
    """The fast path for ids, actions and hashes answers exactly as the full scan."""
    assert redact_text(text) == _scan(text, MAX_STRING)


def test_a_jws_of_plain_characters_is_still_redacted() -> None:
    token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"
    assert redact_text(token) == REDACTED
    assert redact_text("eyJhbGciOiJFUzI1NiJ9") == _scan("eyJhbGciOiJFUzI1NiJ9", MAX_STRING)


def test_sensitive_names_are_judged_the_same_whether_remembered_or_long() -> None:
    for _ in range(2):  # the first answer is computed, the second remembered
        assert is_sensitive("refresh_token")
    assert not is_sensitive("grant_type")
    assert is_sensitive("x" * 100 + "_password")
    assert not is_sensitive("x" * 100)


def test_only_text_left_unchanged_is_remembered() -> None:
    """The cache of scanned text never holds a secret, and never lets one through: text
    with a credential is scanned, and redacted, every time."""
    clean = "client:remembered-app scope=api:read"
    secret = "client:remembered-app code=abc123secretvalue"
    assert redact_text(clean) == clean
    assert clean in redaction._CLEAN
    first = redact_text(secret)
    assert "abc123secretvalue" not in first
    assert secret not in redaction._CLEAN
    assert redact_text(secret) == first
    assert "abc123secretvalue" not in redact_text(secret, limit=200)
