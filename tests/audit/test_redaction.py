"""Redaction: no secret, token, code, password, cookie or Authorization value gets through."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from bastion.audit.redaction import REDACTED, is_sensitive, redact, redact_text

SECRET = "s3cr3t-VALUE-9f8e7d"
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


def test_free_text_credentials() -> None:
    for text in [
        f"Authorization: Bearer {SECRET}",
        f"basic {SECRET}",
        f"GET /cb?state=ok&code={SECRET}",
        f"refresh_token={SECRET}; path=/",
        f'{{"access_token": "{SECRET}"}}',
        f"password:{SECRET}",
        f"client_secret = '{SECRET}'",
    ]:
        assert SECRET not in redact_text(text), text
    assert "state=ok" in redact_text(f"/cb?state=ok&code={SECRET}")


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

    out = redact({1: "int key", (2, 3): "tuple key", "obj": Hostile(), "b": b"\xff\xfe"})
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
